"""Workers screen: worker and queue tables, pool/rate-limit/restart/shutdown/purge driven by keys, snapshots."""

from __future__ import annotations

import dataclasses
import time

import pytest

from stalk.embedded.control import ControlError, HeldTask, WorkerReport
from stalk.embedded.control.worker_report import worker_report
from stalk.embedded.events import EventStore
from stalk.panel.messages import BrokerChanged, ProcessesChanged
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.form_modal import FormScreen
from stalk.panel.screens.worker_detail import WorkerDetailScreen, summary_text
from stalk.panel.widgets.held_table import HeldTable
from stalk.panel.worker_forms import check_autoscale, check_rate_limit
from stalk.panel.workers_data import (
    INSPECTED,
    WorkersData,
    consumed_queues,
    inspect_all,
    pool_names,
    queue_rows,
    worker_rows,
)

from .conftest import SIZE
from .harness import BUSY, FROZEN, REDIS, app_for, in_process_app, serving, settle, sync
from .stand_ins import Control

HOSTS = {"worker:default": "default@stalk-host", "worker:slow": "slow@stalk-host", "worker:io": "io@stalk-host"}
PROCESSES = [dataclasses.replace(p, hostname=HOSTS.get(p.name)) for p in BUSY]


def heartbeat(hostname: str, at: float, processed: int, active: int, load: tuple[float, ...],
              kind: str = "worker-heartbeat") -> dict:
    return {"type": kind, "hostname": hostname, "timestamp": at, "freq": 2.0, "processed": processed,
            "active": active, "loadavg": list(load), "pid": 4100 + len(hostname), "sw_ver": "5.7.0"}


def busy_events() -> EventStore:
    """A real EventStore (not started: no threads, no expiry) fed a fixed worker event sequence."""
    store = EventStore(workers=[("default@stalk-host", "prefork", 4), ("slow@stalk-host", "prefork", 2),
                                ("io@stalk-host", "prefork", 8)])
    store.ingest_many([
        heartbeat("default@stalk-host", FROZEN - 600, 0, 0, (0.1, 0.1, 0.1), "worker-online"),
        heartbeat("slow@stalk-host", FROZEN - 600, 0, 0, (0.1, 0.1, 0.1), "worker-online"),
        heartbeat("io@stalk-host", FROZEN - 600, 5_000, 0, (0.3, 0.2, 0.2), "worker-online"),
        heartbeat("io@stalk-host", FROZEN - 190, 5_520, 0, (0.0, 0.1, 0.2)),
        {"type": "worker-offline", "hostname": "io@stalk-host", "timestamp": FROZEN - 188},
        heartbeat("slow@stalk-host", FROZEN - 25, 87, 2, (1.95, 1.20, 0.88)),
        heartbeat("default@stalk-host", FROZEN - 2, 1_204, 3, (0.52, 0.41, 0.30)),
    ])
    return store


def busy_control(**kwargs) -> Control:
    return Control(depths={"default": 12, "slow": 340, "media": 0, "io": 57},
                   reserved={"default@stalk-host": [{}, {}], "slow@stalk-host": [{}] * 6}, **kwargs)


def app_with(stack, events=None, control=None, **layers):
    """The panel over the API of `stack` serving `events` and `control` (None: none) and `layers`."""
    return app_for(serving(stack, events=events, control=control, **layers))


def on_workers(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(BrokerChanged(REDIS))
        pilot.app.post_message(ProcessesChanged(PROCESSES))
        await pilot.pause()
        await pilot.press("3")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in press:
            await pilot.press(key)
        await pilot.pause()

    return run_before


# -- pure parts ---------------------------------------------------------------------------------


def test_rows_merge_event_store_and_supervisor() -> None:
    rows = worker_rows(busy_events().workers()[:1], PROCESSES, {"default@stalk-host": [1, 2]})
    by_host = {r.hostname: r for r in rows}
    assert by_host["default@stalk-host"].process == "worker:default"
    assert by_host["default@stalk-host"].reserved == 2
    assert by_host["slow@stalk-host"].heartbeat is None and not by_host["slow@stalk-host"].online
    queues = {q.name: q for q in queue_rows({"default": 3, "orphan": 1}, PROCESSES)}
    assert queues["orphan"].consumers == () and queues["media"].consumers == ("worker:slow",)
    assert queues["media"].waiting is None and queues["default"].waiting == 3


def test_a_worker_that_only_answered_inspect_gets_a_row() -> None:
    stats = {"ext@h": {"pool": {"implementation": "celery.concurrency.thread:TaskPool", "max-concurrency": 3}}}
    queues = consumed_queues({"ext@h": [{"name": "default"}, {"name": "bulk"}], "bad@h": "not a list"})
    assert pool_names(stats) == {"ext@h": "threads"} and queues == {"ext@h": ("default", "bulk")}
    rows = worker_rows([], PROCESSES, None, {"ext@h": 3}, pool_names(stats), queues)
    ext = next(r for r in rows if r.hostname == "ext@h")
    assert (ext.online, ext.process, ext.pool, ext.concurrency, ext.queues) == (True, None, "threads", 3,
                                                                                ("default", "bulk"))
    by_queue = {q.name: q.consumers for q in queue_rows({}, PROCESSES, rows)}
    assert by_queue["bulk"] == ("ext@h",) and by_queue["default"] == ("worker:default", "ext@h")


def test_failed_broadcasts_are_told_in_one_order_whichever_failed_first() -> None:
    """The three inspect broadcasts run at once: their problems were listed as they failed, so the
    Workers status line (and its snapshot) changed with thread timing (seen over the API)."""

    class Late:  # the first kind asked fails last
        def inspect(self, kind: str, timeout: float = 1.0) -> dict:
            time.sleep({"reserved": 0.2, "stats": 0.1}.get(kind, 0.0))
            raise ControlError(f"{kind}: no reply")

    data = WorkersData()
    assert inspect_all(data, Late()) == dict.fromkeys(INSPECTED)
    assert data.problems == [f"{name}: {kind}: no reply" for kind, name in INSPECTED.items()]


def test_form_checks_give_one_line() -> None:
    assert check_rate_limit({"task": "demo.add", "rate": "10 / m"}).rate == "10/m"
    with pytest.raises(ValueError, match="not a rate"):
        check_rate_limit({"task": "demo.add", "rate": "fast"})
    with pytest.raises(ValueError, match="no worker registered"):
        check_rate_limit({"task": "demo.nope", "rate": "1/s"}, ("demo.add",))
    assert check_autoscale({"max": "8", "min": "2"}).max == 8
    with pytest.raises(ValueError, match="above max"):
        check_autoscale({"max": "2", "min": "3"})


# -- Pilot flows --------------------------------------------------------------------------------


@sync
async def test_grow_and_shrink_target_the_selected_worker(eager_stack) -> None:
    control = busy_control()
    control.pool = {"slow@stalk-host": 2}
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("down", "plus")(pilot)
        await app.workers.wait_for_complete()
        await until(pilot, lambda: app.screen.data.workers[1].concurrency == 3, "the live pool size")
        await pilot.press("minus")
        await app.workers.wait_for_complete()
        assert control.calls == [("pool_grow", ("slow@stalk-host", 1)), ("pool_shrink", ("slow@stalk-host", 1))]


@sync
async def test_purge_asks_first_and_sends_only_on_yes(eager_stack) -> None:
    control = busy_control()
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("tab", "down", "p")(pilot)  # queues sorted: default, io, media, slow
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert control.calls == []
        await pilot.press("p", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert control.calls == [("purge", ("io",))]
        assert any("purged 57" in str(n.message) for n in app._notifications)


@sync
async def test_a_queue_named_like_markup_is_purged_by_its_name(eager_stack) -> None:
    """The dialog quotes the queue's name: `[/]` in it was markup (MarkupError: the panel died)."""
    control = Control(depths={"[/]odd": 2})
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("tab")(pilot)
        await until(pilot, lambda: app.screen.query_one("#queue-table").selected == "[/]odd", "the odd queue")
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        app.export_screenshot()  # renders the dialog
        assert str(app.screen.query_one("#question").render()) == "Purge queue [/]odd?"
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert control.calls == [("purge", ("[/]odd",))]


@sync
async def test_shutdown_is_confirmed(eager_stack) -> None:
    control = busy_control()
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("x")(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        assert control.calls == [("shutdown", ("default@stalk-host",))]


@sync
async def test_rate_limit_modal_rejects_bad_rate_then_sends(eager_stack) -> None:
    control = busy_control()
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("l", *"demo.add", "tab", *"fast", "enter")(pilot)
        assert isinstance(app.screen, FormScreen)
        assert "not a rate" in str(app.screen.query_one("#form-error").render())
        assert control.calls == []
        await pilot.press(*["backspace"] * 4, *"10/m", "enter")
        await app.workers.wait_for_complete()
        assert control.calls == [("rate_limit", ("demo.add", "10/m", None))]


@sync
async def test_autoscale_sends_bounds(eager_stack) -> None:
    control = busy_control()
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("a", "tab", "backspace", "2", "enter")(pilot)
        await app.workers.wait_for_complete()
        assert control.calls == [("autoscale", ("default@stalk-host", 4, 2))]


@sync
async def test_restart_restarts_the_supervised_process(eager_stack) -> None:
    restarted: list[str] = []
    app = app_with(eager_stack, busy_events(), busy_control(), processes=lambda: PROCESSES,
                   restart_process=restarted.append)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("down", "down", "r")(pilot)
        await app.workers.wait_for_complete()
        assert restarted == ["worker:io"]


@sync
async def test_control_errors_become_notices(eager_stack) -> None:
    control = busy_control(fail={"pool_grow": "no reply from default@stalk-host"})
    app = app_with(eager_stack, busy_events(), control)
    async with app.run_test(size=SIZE) as pilot:
        await on_workers("plus")(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("no reply" in str(n.message) and n.severity == "error" for n in app._notifications)


# -- snapshots ----------------------------------------------------------------------------------


def test_workers_busy_snapshot(snap_compare, eager_stack):
    app = app_with(eager_stack, busy_events(), busy_control())
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers())


def test_workers_without_layers_snapshot(snap_compare, eager_stack):
    """In process on purpose: a Stack without an EventStore and a Control object. A panel on the API always
    has both views; a stack process without them yet answers 503, shown as each part's problem."""
    app = in_process_app(serving(eager_stack, events=None, control=None))
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers())


def test_workers_errors_snapshot(snap_compare, eager_stack):
    control = busy_control(fail={"queue_depths": "broker unreachable", "inspect": "no reply in 0.5 s"})
    app = app_with(eager_stack, busy_events(), control)
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers())


def test_workers_purge_confirm_snapshot(snap_compare, eager_stack):
    app = app_with(eager_stack, busy_events(), busy_control())
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers("tab", "down", "down", "down", "p"))


def test_workers_rate_limit_modal_snapshot(snap_compare, eager_stack):
    app = app_with(eager_stack, busy_events(), busy_control())
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers("l", *"demo.add", "tab", *"fast", "enter"))


def busy_report() -> WorkerReport:
    """What `default@stalk-host` says about itself in the busy fixture (one of each kind of held task)."""
    return WorkerReport(
        "default@stalk-host", answered=True, pid=4102, uptime=3725.0, pool="prefork", processes=(4110, 4111),
        concurrency=2, prefetch=8, broker="redis://127.0.0.1:6390/0", queues=("default", "priority"),
        registered=("demo.add", "demo.long_running", "demo.slow"),
        active=(HeldTask("5f0c2a11-7d3e-4c1a-9a7e-2b1f0c3d4e5f", "demo.long_running", "[30]", "{}",
                         started=FROZEN - 12, worker_pid=4111),),
        reserved=(HeldTask("9b7e6d5c-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "demo.add", "[2, 3]", "{}"),),
        scheduled=(HeldTask("c0ffee00-1111-4222-8333-444455556666", "demo.slow", "[]", "{'seconds': 5}",
                            eta=FROZEN + 290),),
        processed={"demo.add": 1_180, "demo.long_running": 24}, rusage={"utime": 61.5, "stime": 8.25, "maxrss": 62_648},
    )


def test_worker_detail_snapshot(snap_compare, eager_stack):
    control = busy_control()
    control.reports["default@stalk-host"] = busy_report()
    app = app_with(eager_stack, busy_events(), control)
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers("enter"))


def test_worker_detail_no_answer_snapshot(snap_compare, eager_stack):
    app = app_with(eager_stack, busy_events(), busy_control())
    assert snap_compare(app, terminal_size=SIZE, run_before=on_workers("down", "down", "enter"))


def test_worker_report_reads_what_celery_answers() -> None:
    replies = {
        "stats": {"pid": 7, "uptime": 12, "prefetch_count": 4, "total": {"a.b": 3},
                  "pool": {"implementation": "celery.concurrency.prefork:TaskPool", "max-concurrency": 2,
                           "processes": [8, 9]},
                  "broker": {"transport": "amqp", "hostname": "rabbit", "port": 5672, "virtual_host": "/",
                             "userid": "guest"},
                  "rusage": {"utime": 1.5, "stime": 0.5, "maxrss": 2048, "nvcsw": 3}},
        "active": [{"id": "t1", "name": "a.b", "args": [1, 2], "kwargs": {"k": "[/]"}, "time_start": 99.5,
                    "worker_pid": 9, "acknowledged": True}],
        "reserved": [{"id": "t2", "name": "a.b", "args": [], "kwargs": {}}],
        "scheduled": [{"eta": "2030-01-31T09:00:00+00:00", "priority": 6,
                       "request": {"id": "t3", "name": "a.c", "args": ["x"], "kwargs": {}}}],
        "active_queues": [{"name": "default"}, {"name": "bulk"}],
        "registered": ["a.c [rate_limit=1/s]", "a.b"],
    }
    report = worker_report("w@h", lambda kind: {"w@h": replies[kind]})
    assert (report.pid, report.pool, report.processes, report.concurrency, report.prefetch) == (7, "prefork", (8, 9), 2, 4)
    assert report.broker == "amqp://rabbit:5672/" and report.queues == ("default", "bulk")
    assert report.registered == ("a.b", "a.c") and report.processed == {"a.b": 3}
    assert report.rusage == {"utime": 1.5, "stime": 0.5, "maxrss": 2048.0}
    assert report.active[0] == HeldTask("t1", "a.b", "[1, 2]", "{'k': '[/]'}", started=99.5, worker_pid=9)
    assert report.scheduled[0].eta == 1896080400.0 and report.scheduled[0].task_id == "t3"
    replies["stats"]["pool"]["processes"] = [8, 9, 18995]  # after `+` (pool_grow): max-concurrency still 2
    grown = worker_report("w@h", lambda kind: {"w@h": replies[kind]})
    assert grown.concurrency == 3 and "prefork × 3[/b] (processes 8, 9, 18995)" in summary_text(grown, "w@h", None)
    silent = worker_report("w@h", lambda kind: {})
    assert not silent.answered
    broken = worker_report("w@h", lambda kind: {"w@h": replies[kind]} if kind != "stats" else 1 / 0)
    assert broken.answered and broken.problems == ("stats: division by zero",) and broken.pid is None


# -- the real thing: a redis stack, its worker, a real Control ----------------------------------


async def until(pilot, check, what: str, timeout: float = 20.0):
    """Let the app run until `check()` is truthy (workers answer, pools change, queues fill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pool_size(stack, hostname: str) -> int:
    stats = stack.control.inspect("stats", destination=hostname, timeout=2.0).get(hostname) or {}
    return len(stats.get("pool", {}).get("processes", []))


@pytest.mark.procs
@pytest.mark.xdist_group("panel-workers")
@sync
async def test_real_worker_grows_runs_a_beat_entry_and_its_queue_is_purged(running_stack) -> None:
    stack = running_stack(broker={"mode": "redis"}, app="tests.apps.panel_workers_app:app", beat=False)
    app = app_for(stack, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("3")
        screen = app.screen
        row = await until(pilot, lambda: next((w for w in screen.data.workers if w.online), None), "an online worker")
        assert row.process == "worker:pw" and screen.query_one("#worker-table").selected == row.hostname
        before = pool_size(stack, row.hostname)
        await pilot.press("plus")
        await until(pilot, lambda: pool_size(stack, row.hostname) == before + 1, "the pool to grow")
        await until(pilot, lambda: screen.data.workers[0].concurrency == before + 1, "the screen to show it")

        await pilot.press("4")  # Beat: run the entry now, the worker runs it
        await until(pilot, lambda: app.screen.data.rows, "the beat entries")
        await pilot.press("n")
        sent = await until(pilot, lambda: next((str(n.message) for n in app._notifications
                                                if "sent pw-hourly now" in str(n.message)), None), "run now")
        task_id = sent.rsplit("task ", 1)[1].rstrip(")")
        record = stack.events.wait_for(task_id, ("SUCCESS",), timeout=15)
        assert record is not None and record.result == "42"
        await pilot.press("3")

        stack.stop_process("worker:pw")  # a queue nobody drains
        await until(pilot, lambda: stack.process("worker:pw").pid is None, "the worker to stop")
        for i in range(5):
            stack.app.send_task("pw.add", (i, 1), queue="pw")
        await until(pilot, lambda: any(q.name == "pw" and q.waiting == 5 for q in screen.data.queues), "5 waiting")
        queues = [q.name for q in screen.data.queues]
        await pilot.press("tab", *["down"] * queues.index("pw"), "p")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: stack.control.queue_depths().get("pw") == 0, "the purge")
        await until(pilot, lambda: any("purged 5" in str(n.message) for n in app._notifications), "the notice")


@pytest.mark.procs
@pytest.mark.xdist_group("panel-workers")
@sync
async def test_real_worker_detail_shows_what_it_holds_and_opens_a_task(running_stack) -> None:
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    running = stack.control.submit({"name": "demo.long_running", "args": [8]}).id
    due = stack.control.submit({"name": "demo.add", "args": [1, 2], "countdown": 600}).id
    app = app_for(stack, clock=time.time)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("3")
            workers = app.screen
            hostname = await until(pilot, lambda: next((w.hostname for w in workers.data.workers
                                                        if w.online and w.process == "worker:default"), None),
                                   "the default worker online")
            index = [w.hostname for w in workers.data.workers].index(hostname)
            await pilot.press(*["down"] * index, "enter")
            detail = app.screen
            assert isinstance(detail, WorkerDetailScreen) and detail.hostname == hostname
            held = lambda: {t.task_id for t in (*detail.report.active, *detail.report.scheduled)}  # noqa: E731
            await until(pilot, lambda: detail.report is not None and {running, due} <= held(), "the held tasks")
            assert detail.report.pool == "prefork" and "default" in detail.report.queues
            assert detail.query_one(HeldTable).selected == running  # running tasks first
            await pilot.press("enter")
            assert isinstance(app.screen, DetailScreen) and app.screen.task_id == running
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is detail, "back on the worker")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is workers, "back on Workers")
    finally:
        stack.control.revoke(running, terminate=True)


def test_workers_eager_empty_snapshot(snap_compare, eager_stack):
    """The eager stack as it is (its real EventStore and Control): no workers, nothing queued."""
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, press=["3", "wait:300"])


def test_worker_detail_80x24_snapshot(snap_compare, eager_stack):
    """A classic terminal: the counts go under the tasks, whose columns keep the whole width."""
    control = busy_control()
    control.reports["default@stalk-host"] = busy_report()
    app = app_with(eager_stack, busy_events(), control)
    assert snap_compare(app, terminal_size=(80, 24), run_before=on_workers("enter"))
