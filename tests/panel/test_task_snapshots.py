"""Tasks, Task detail and Submit snapshots from a deterministic stack: a real EventStore (not started: no
threads, no expiry) fed a fixed event sequence, and a real Control whose cluster answers are fixed."""

from __future__ import annotations

from typing import Any

from textual.widgets import TextArea

from stalk.embedded.control import ClusterView, Control, RevokeEntry
from stalk.embedded.events import EventStore
from stalk.panel.messages import OpenTask

from .conftest import SIZE
from .harness import FROZEN, app_for, serving, settle, until, workers_finished

DEFAULT, SLOW, IO = "default@stalk-host", "slow@stalk-host", "io@stalk-host"
TRACEBACK = """Traceback (most recent call last):
  File "embedded/demo/maintenance.py", line 110, in fail
    _parse_config({"timeout": "30s"})
  File "embedded/demo/maintenance.py", line 103, in _parse_config
    return int(raw["retries"])
KeyError: 'retries'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "embedded/demo/maintenance.py", line 112, in fail
    raise RuntimeError(message) from exc
RuntimeError: the demo task failed on purpose
"""


def tid(i: int) -> str:
    return f"{i:04d}c0de-7c1e-4f0a-9b2d-5e6f7a8b9c0d"


ADD, FAILED, PROGRESS, LOST, FLAKY, REVOKED, PENDING, PARENT, REJECTED = (tid(i) for i in range(1, 10))
CHILDREN = [tid(20 + i) for i in range(3)]
GROUP = "9e0f1a2b-group-4c5d-8e9f-000000000042"


def ev(type_: str, uuid: str, at: float, host: str | None = DEFAULT, **fields: Any) -> dict:
    return {"type": type_, "uuid": uuid, "hostname": host, "timestamp": FROZEN - at, **fields}


def life(uuid: str, name: str, at: float, args: str = "()", kwargs: str = "{}", queue: str = "default",
         host: str = DEFAULT, started: bool = True, **sent: Any) -> list[dict]:
    events = [ev("task-sent", uuid, at, None, name=name, args=args, kwargs=kwargs, queue=queue,
                 routing_key=queue, retries=0, **sent),
              ev("task-received", uuid, at - 0.2, host, name=name, args=args, kwargs=kwargs, retries=0, **sent)]
    if started:
        events.append(ev("task-started", uuid, at - 0.4, host))
    return events


def worker(kind: str, host: str, at: float) -> dict:
    return {"type": kind, "hostname": host, "timestamp": FROZEN - at, "freq": 2.0, "pid": 4100 + len(host)}


def busy_events() -> list[dict]:
    events = [worker("worker-online", h, 900) for h in (DEFAULT, SLOW, IO)]
    events += life(ADD, "demo.add", 300, "(2, 3)") + [ev("task-succeeded", ADD, 299.5, result="5", runtime=0.004)]
    events += life(FAILED, "demo.fail", 280) + [
        ev("task-failed", FAILED, 279, exception="RuntimeError('the demo task failed on purpose')",
           traceback=TRACEBACK)]
    events += life(PROGRESS, "demo.long_running", 120, "(60,)", queue="slow", host=SLOW) + [
        ev("task-progress", PROGRESS, 30, SLOW, state="PROGRESS",
           meta={"current": 90, "total": 120, "status": "working (45/60 s)"})]
    events += life(LOST, "demo.slow_add", 200, "(1, 2)", "{'seconds': 30}", queue="slow", host=IO)
    events += [worker("worker-offline", IO, 190)]
    events += life(FLAKY, "demo.flaky", 100, "(0.5,)") + [
        ev("task-retried", FLAKY, 99, exception="TransientError('flaky dependency')"),
        ev("task-received", FLAKY, 97, name="demo.flaky", args="(0.5,)", kwargs="{}", retries=1),
        ev("task-started", FLAKY, 96.8),
        ev("task-retried", FLAKY, 96, exception="TransientError('flaky dependency')"),
    ]
    events += life(REVOKED, "demo.long_running", 80, "(20,)", queue="slow", host=SLOW) + [
        ev("task-revoked", REVOKED, 70, SLOW, terminated=True)]
    events += [ev("task-sent", PENDING, 20, None, name="demo.analyze_youtube",
                  args="('https://youtu.be/dQw4w9WgXcQ',)", kwargs="{'priority': True}", queue="priority",
                  routing_key="priority", retries=0)]
    events += life(PARENT, "demo.collect_all_plugins", 61, queue="collection") + [
        ev("task-succeeded", PARENT, 60.0, result="<GroupResult: 9e0f1a2b-group-4c5d-8e9f-000000000042>",
           runtime=0.02)]
    plugins = ("rss", "github", "mastodon")
    for i, (child, plugin) in enumerate(zip(CHILDREN, plugins, strict=True)):
        events += life(child, "demo.collect_from_plugin", 60.5 - i * 0.1, f"('{plugin}',)", queue="collection",
                       started=i < 2, parent_id=PARENT, root_id=PARENT, group_id=GROUP)
    events += [ev("task-succeeded", CHILDREN[0], 50, result="{'plugin': 'rss', 'items': 12}", runtime=9.3),
               ev("task-progress", CHILDREN[1], 40, state="PROGRESS", meta={"current": 1, "total": 4})]
    events += life(REJECTED, "demo.add", 10, "('x', None)", started=False) + [
        ev("task-rejected", REJECTED, 9.5, requeue=False)]
    return events


def busy_store() -> EventStore:
    store = EventStore(workers=[(DEFAULT, "prefork", 2), (SLOW, "prefork", 2), (IO, "prefork", 2)])
    store.ingest_many(busy_events())
    return store


class FixedCluster(ClusterView):
    """Real routing (the app's task_routes); what the workers would answer is fixed."""

    def __init__(self, stack: Any, tasks: set[str], queues: set[str]) -> None:
        super().__init__(stack.app, stack.user_app, stack.worker_specs)
        self._tasks, self._queues = frozenset(tasks), frozenset(queues)

    def tasks(self) -> frozenset[str]:
        return self._tasks

    def queues(self) -> frozenset[str]:
        return self._queues


def redis_like_control(stack: Any) -> Control:
    """A real Control as on a Redis broker (visibility timeout 3600 s) whose workers consume default and
    slow only and do not register demo.fail."""
    tasks = {n for n in stack.user_app.tasks if not n.startswith("celery.") and n != "demo.fail"}
    view = FixedCluster(stack, tasks, {"default", "slow"})
    return Control(stack.app, user_app=stack.user_app, worker_specs=stack.worker_specs, eager=False,
                   visibility_timeout=3600, view=view)


def app_with(stack: Any, events: Any = None, control: Any = None):
    """The panel over the API of `stack` serving `events` (None: none) and `control` (None: its own)."""
    layers = {"events": events} if control is None else {"events": events, "control": control}
    return app_for(serving(stack, **layers))


async def until_idle(pilot) -> None:
    for _ in range(3):
        await workers_finished(pilot.app)
        await pilot.pause()


def rows_settled(screen: Any) -> bool:
    """The Tasks screen shows its filter's rows and has no query running or due (a live re-query comes
    REQUERY_AFTER s after the last rows)."""
    return screen._shown_generation == screen._generation and not screen._dirty and not screen._inflight


def on_tasks(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("2")
        await until_idle(pilot)
        for key in press:
            await pilot.press(key)
            await until_idle(pilot)
        await until(pilot, lambda: rows_settled(pilot.app.screen), "the filter's rows, no query running or due")
        await until_idle(pilot)

    return run_before


def on_detail(task_id: str, *press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(OpenTask(task_id))
        await until_idle(pilot)
        for key in press:
            await pilot.press(key)
            await until_idle(pilot)

    return run_before


def on_submit(task: str, args: str = "[]", kwargs: str = "{}", **inputs: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("7")
        await until_idle(pilot)
        await pilot.press(*task, "enter")
        screen = pilot.app.screen
        screen.query_one("#args", TextArea).text = args
        screen.query_one("#kwargs", TextArea).text = kwargs
        for key, value in inputs.items():
            screen.query_one(f"#{key}").value = value
        await until_idle(pilot)  # the control's check (a worker) answered and its verdict is shown

    return run_before


# -- Tasks --------------------------------------------------------------------------------------


def test_tasks_empty_store_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, EventStore()), terminal_size=SIZE, run_before=on_tasks())


def test_tasks_busy_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE, run_before=on_tasks())


def test_tasks_filtered_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE,
                        run_before=on_tasks("slash", *"queue:slow state:revoked,lost,progress"))


def test_tasks_search_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE,
                        run_before=on_tasks("slash", *"plugin", "enter"))


# -- Task detail --------------------------------------------------------------------------------


def test_detail_success_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE, run_before=on_detail(ADD))


def test_detail_failure_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE, run_before=on_detail(FAILED))


def test_detail_progress_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE, run_before=on_detail(PROGRESS))


def test_detail_group_parent_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE, run_before=on_detail(PARENT))


def test_detail_revoke_confirm_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE,
                        run_before=on_detail(PROGRESS, "t"))


class RevokedControl(Control):
    """A real Control whose revoke store says PROGRESS and PENDING were revoked 5 s before FROZEN."""

    def revoke_entry(self, task_id: str) -> RevokeEntry | None:
        return RevokeEntry(task_id, FROZEN - 5) if task_id in (PROGRESS, PENDING) else None


def test_detail_revoke_requested_snapshot(snap_compare, eager_stack):
    """Revoked through Stalk while queued: the worker's task-revoked comes only when the task is due."""
    control = RevokedControl(eager_stack.app, user_app=eager_stack.user_app, worker_specs=eager_stack.worker_specs)
    assert snap_compare(app_with(eager_stack, busy_store(), control), terminal_size=SIZE,
                        run_before=on_detail(PENDING))


def test_detail_revoke_wraps_its_detail_snapshot(snap_compare, eager_stack):
    """v on a running task: the dialog's two-line explanation wraps inside the border (it was cut)."""
    assert snap_compare(app_with(eager_stack, busy_store()), terminal_size=SIZE,
                        run_before=on_detail(PROGRESS, "v"))


# -- Submit -------------------------------------------------------------------------------------


def test_submit_bad_json_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, EventStore()), terminal_size=SIZE,
                        run_before=on_submit("demo.add", '[2,\n 3 "x"]'))


def test_submit_valid_80x24_snapshot(snap_compare, eager_stack):
    """80x24: the options in two rows, shorter JSON boxes; every field and the verdict still show."""
    assert snap_compare(app_with(eager_stack, EventStore()), terminal_size=(80, 24),
                        run_before=on_submit("demo.slow_add", "[2, 3]", '{"seconds": 0.5}', priority="5"))


def test_submit_valid_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_with(eager_stack, EventStore()), terminal_size=SIZE,
                        run_before=on_submit("demo.slow_add", "[2, 3]", '{"seconds": 0.5}', priority="5"))


def test_submit_control_error_snapshot(snap_compare, eager_stack):
    control = redis_like_control(eager_stack)
    assert snap_compare(app_with(eager_stack, EventStore(), control), terminal_size=SIZE,
                        run_before=on_submit("demo.analyze_youtube", '["https://youtu.be/dQw4w9WgXcQ"]',
                                             countdown="7200"))
