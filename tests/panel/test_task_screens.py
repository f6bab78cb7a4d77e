"""Tasks, Task detail and Submit: pure parts, the table diff, and Pilot flows on a real eager stack (its
real EventStore and Control: tasks run in process, their events land in the store)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Input, Label, Static, TextArea

from stalk.embedded.control import Control, RevokeEntry
from stalk.embedded.events import EventStore, TaskRecord
from stalk.panel.colours import role_of
from stalk.panel.formatting import pretty_repr
from stalk.panel.messages import OpenTask
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.screens.detail import DetailData, DetailScreen, read_detail, render_detail
from stalk.panel.screens.help import HelpScreen
from stalk.panel.screens.submit import SubmitScreen
from stalk.panel.screens.tasks import TasksScreen
from stalk.panel.submit_form import json_from_repr, local_problems, request_of
from stalk.panel.task_rows import (
    SORT_KEYS,
    TASK_STATES,
    TaskFilter,
    TaskRow,
    parse_filter,
    progress_of,
)
from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.mode_bar import ModeBar
from stalk.panel.widgets.task_table import TaskTable

from .conftest import SIZE
from .harness import FROZEN, app_for, sync
from .test_task_snapshots import (
    CHILDREN,
    FAILED,
    GROUP,
    LOST,
    PARENT,
    PROGRESS,
    app_with,
    busy_store,
    redis_like_control,
)


def row(i: int, state: str = "SUCCESS", progress: float | None = None) -> TaskRow:
    return TaskRow(f"task-{i:04d}", state, "demo.add", f"[{i},1]", "celery@default", "default",
                   1_780_000_000.0 - i, 0.01, 0, progress)


# -- pure parts ---------------------------------------------------------------------------------


def test_filter_text_becomes_query() -> None:
    flt = parse_filter("state:failure name:demo.add queue:slow worker:celery@io boom now", TaskFilter())
    assert (flt.state, flt.name, flt.queue, flt.worker, flt.search) == (
        "FAILURE", "demo.add", "slow", "celery@io", "boom now")
    assert flt.query_kwargs(10)["limit"] == 10


def test_every_store_state_has_one_colour() -> None:
    assert {"LOST", "REJECTED"} <= set(TASK_STATES)
    assert role_of("LOST") == role_of("FAILURE") == "error"
    assert all(role_of(s) != "foreground-muted" for s in TASK_STATES if s != "PENDING")


def test_rows_from_real_records() -> None:
    store = busy_store()
    rows = {r.task_id: r for r in map(TaskRow.of, store.query(limit=None))}
    assert rows[LOST].state == "LOST" and rows[LOST].progress is None
    assert rows[LOST].args == "(1, 2) {'seconds': 30}"
    assert rows[FAILED].args == ""  # "()" and "{}" say nothing
    progressing = [r for r in rows.values() if r.state == "PROGRESS"]
    assert sorted(r.progress for r in progressing) == [0.25, 0.75]


def test_progress_of_survives_any_meta() -> None:
    for meta in ({"current": 1, "total": 0}, {"total": "x"}, {"current": None, "total": 4}, "junk",
                 {"current": float("nan"), "total": 1}, {"current": 10**400, "total": 1}):
        value = progress_of({"state": "PROGRESS", "progress": meta})
        assert value is None or 0.0 <= value <= 1.0
    assert progress_of({"state": "SUCCESS", "progress": {"current": 1, "total": 2}}) is None
    assert progress_of({"state": "SUCCESS", "progress": {"current": 1, "total": 2}}, finished_too=True) == 0.5


def test_reprs_become_json_or_stay_as_they_are() -> None:
    assert json_from_repr("args", "(2, 3)", list) == ("[2, 3]", None)
    assert json_from_repr("kwargs", "{'a': None, 'b': True}", dict) == ('{"a": null, "b": true}', None)
    assert json_from_repr("args", None, list) == ("[]", None)
    for text, why in (("('aaaa...', 2)", "truncated"), ("([0, 1, , ...])", "not a Python literal"),
                      ("({1, 2},)", "not JSON"), ("(<object at 0x1>,)", "not a Python literal")):
        kept, problem = json_from_repr("args", text, list)
        assert kept == text and why in (problem or ""), (text, problem)
    assert pretty_repr("(2, 3)") == "[2, 3]" and pretty_repr("<GroupResult: x>") == "<GroupResult: x>"


def test_local_problems_are_the_control_api_messages() -> None:
    request = request_of("demo.add", "[2,\n 3 4]", "{}", None, {"priority": "12", "countdown": "x"})
    messages = [p.message for p in local_problems(request)]
    assert messages[0].startswith("args: invalid JSON at line 2, column 4")
    assert any(m.startswith("priority: must be 0-9") for m in messages)
    assert any(m.startswith("countdown: expected a number") for m in messages)
    assert local_problems(request_of("demo.add", "[1, 2]", "", None, {"eta": "2030-01-01T00:00:00Z"})) == []


def test_detail_renders_relations_and_traceback() -> None:
    store = busy_store()
    parent = render_detail(PARENT, DetailData(store.get(PARENT), store.events_of(PARENT),
                                              store.children_of(PARENT), None, {}))
    assert "children[/b] (3)" in parent and "progress unknown" in parent
    failed = render_detail(FAILED, DetailData(store.get(FAILED), store.events_of(FAILED)))
    assert "traceback" in failed and "KeyError" in failed
    assert "not in the event store" in render_detail("nope", DetailData())
    replaced = TaskRecord("r1", "demo.cache_video", "SUCCESS", replaced="demo.ingest_youtube_video")
    assert "replaces[/] demo.ingest_youtube_video" in render_detail("r1", DetailData(replaced))


def retried_store() -> EventStore:
    """A task retried twice as Celery does it: each retry sends a new message (a task-sent, retries=n)
    before its task-retried; the last one not received yet. The second attempt ran at 14:26:21 UTC."""
    base = FROZEN - 600
    store = EventStore()

    def ev(type_: str, at: float, **fields: Any) -> dict:
        return {"type": type_, "uuid": "r-1", "hostname": "celery@slow", "timestamp": base + at, **fields}

    sent = {"name": "demo.analyze_youtube", "queue": "youtube", "routing_key": "youtube"}
    store.ingest_many([
        ev("task-sent", 0.0, retries=0, **sent), ev("task-received", 0.1, retries=0), ev("task-started", 0.2),
        ev("task-sent", 0.5, retries=1, **sent), ev("task-retried", 0.6, exception="QuotaError()"),
        ev("task-received", 10.0, retries=1), ev("task-started", 10.1),
        ev("task-sent", 11.0, retries=2, **sent), ev("task-retried", 11.1, exception="QuotaError()"),
        ev("task-received", 21.0, retries=2), ev("task-started", 21.5),
        ev("task-sent", 22.0, retries=3, **sent), ev("task-retried", 22.1, exception="QuotaError()"),
    ])
    return store


def test_a_retried_tasks_times_read_in_the_order_they_happened() -> None:
    """A retry's new task-sent made the header say "sent 14:26:22, received 14:26:21" and the timeline
    start with RECEIVED retries=2: the header now shows the first send and the last attempt's times,
    labelled so, and the timeline runs sent, retried, received, started, retried."""
    store = retried_store()
    body = render_detail("r-1", DetailData(store.get("r-1"), store.events_of("r-1")), FROZEN)
    plain = re.sub(r"\[/?[^\]]*\]", "", body)
    assert "first sent 20:16:40  last received 20:17:01  last started 20:17:01" in plain, plain
    timeline = plain[plain.index("timeline"):].splitlines()[1:]
    assert [line.split()[:2] for line in timeline] == [
        ["20:16:40", "PENDING"], ["20:16:40", "RETRY"], ["20:16:51", "RETRY"], ["20:17:01", "RECEIVED"],
        ["20:17:01", "STARTED"], ["20:17:02", "RETRY"]]
    assert "retries=2" in timeline[3]


def test_a_requeued_and_retried_task_keeps_its_timeline_in_the_detail_after_a_restart(tmp_path) -> None:
    """History kept only the last state: after a restart the detail of a task requeued and retried, then
    done, ran sent, received, started, success, as if nothing had happened."""
    db, base = tmp_path / "history.sqlite3", FROZEN - 600

    def ev(type_: str, at: float, **fields: Any) -> dict:
        return {"type": type_, "uuid": "q-1", "hostname": "celery@w1", "timestamp": base + at, **fields}

    store = EventStore(history=db).start()
    store.ingest_many([
        ev("task-sent", 0.0, retries=0, name="demo.add", queue="celery"), ev("task-received", 0.1, retries=0),
        ev("task-started", 0.2),
        ev("task-requeued", 1.0, reason="requeued: worker celery@w1 (pid 7) died holding it"),
        ev("task-received", 2.0, retries=0), ev("task-started", 2.1),
        ev("task-sent", 3.0, retries=1, name="demo.add", queue="celery"), ev("task-retried", 3.1, exception="E()"),
        ev("task-received", 4.0, retries=1), ev("task-started", 4.1), ev("task-succeeded", 5.0, result="3")])
    store.stop()
    again = EventStore(history=db).start()
    try:
        body = render_detail("q-1", read_detail("q-1", again, None), FROZEN)
    finally:
        again.stop()
    plain = re.sub(r"\[/?[^\]]*\]", "", body)
    timeline = plain[plain.index("timeline"):].splitlines()[1:]
    assert [line.split()[1] for line in timeline] == ["PENDING", "REQUEUED", "RETRY", "RECEIVED", "STARTED",
                                                      "SUCCESS"], plain
    assert "died holding it" in timeline[1] and "E()" in timeline[2]


def test_a_purged_task_shows_its_reason_and_times_of_another_day_their_date() -> None:
    store = EventStore()
    store.ingest_many([{"type": "task-sent", "uuid": "p-1", "timestamp": FROZEN - 86_400, "name": "demo.add",
                        "queue": "youtube", "retries": 0},
                       {"type": "stalk-purged", "timestamp": FROZEN - 60, "queue": "youtube", "ids": ["p-1"],
                        "by": "the panel (me@box)"}])
    body = render_detail("p-1", DetailData(store.get("p-1"), store.events_of("p-1")), FROZEN)
    plain = re.sub(r"\[/?[^\]]*\]", "", body)
    assert "PURGED" in plain and "sent 05-27 20:26:40" in plain and "finished 20:25:40" in plain, plain
    assert "reason\npurged from queue youtube at 2026-05-28 20:25:40 by the panel (me@box)" in plain
    assert plain.rstrip().splitlines()[-1].split()[:2] == ["20:25:40", "PURGED"]


def test_group_progress_is_asked_again_only_when_members_move() -> None:
    store, calls = busy_store(), []

    class Answers:  # what a result backend says about the group
        def group_progress(self, group_id: str) -> tuple[int, int]:
            calls.append(group_id)
            return 1, 3

    cache: dict = {}
    assert read_detail(PARENT, store, Answers(), cache).groups == {GROUP: (1, 3)}
    read_detail(PARENT, store, Answers(), cache)
    assert calls == [GROUP]
    store.ingest({"type": "task-succeeded", "uuid": CHILDREN[1], "timestamp": 2e9, "result": "{}"})
    read_detail(PARENT, store, Answers(), cache)
    assert calls == [GROUP, GROUP]
    assert read_detail(PARENT, store, None).groups == {GROUP: (2, 3)}  # no backend: the store's count


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield TaskTable()


@sync
async def test_task_table_updates_only_changed_rows() -> None:
    app = TableApp()
    async with app.run_test(size=SIZE):
        table = app.query_one(TaskTable)
        variables = app.get_css_variables()
        rows = [row(i) for i in range(200)]
        table.show(rows, variables)
        assert table.row_count == 200 and table.updates == 200
        changed = list(rows)
        changed[5] = row(5, "PROGRESS", 0.5)
        table.show(changed, variables)
        assert table.updates == 2  # state and progress cells of one row
        table.show([row(999, "STARTED"), *changed[:-1]], variables)  # one new on top, one gone
        assert table.updates == 2
        assert table.task_ids[0] == "task-0999"


# -- Pilot flows on the real eager stack --------------------------------------------------------


def live_app(stack: Any) -> Any:
    """The app on the stack's API, live: store batches arrive over its change stream (nothing detached)."""
    return app_for(stack, clock=time.time)


async def workers_done(pilot) -> None:
    """Every running worker of the app and its screen finished (a cancelled exclusive one counts)."""
    workers = [*pilot.app.workers, *pilot.app.screen.workers]
    await asyncio.gather(*(w.wait() for w in workers if w.state.name != "PENDING"), return_exceptions=True)


async def idle(pilot) -> None:
    for _ in range(2):
        await workers_done(pilot)
        await pilot.pause()


async def until(pilot, check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await idle(pilot)
        value = check()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def fill_submit(pilot, task: str, args: str = "[]", kwargs: str = "{}") -> SubmitScreen:
    await pilot.press("7")
    await idle(pilot)
    await pilot.press("ctrl+l", *task, "enter")
    screen = pilot.app.screen
    assert isinstance(screen, SubmitScreen) and screen.task_name == task
    screen.query_one("#args", TextArea).text = args
    screen.query_one("#kwargs", TextArea).text = kwargs
    await idle(pilot)
    return screen


def problems_text(screen: SubmitScreen) -> str:
    return str(screen.query_one("#submit-problems", Static).render())


def table_ids(app) -> list[str]:
    table = app.screen.query_one(TaskTable)
    return table.task_ids


@sync
async def test_submit_shows_success_in_detail_and_tasks(eager_stack) -> None:
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[2, 3]")
        await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict")
        await pilot.press("ctrl+s")
        detail = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, "Task detail")
        assert screen.sent == [{"name": "demo.add", "args": "[2, 3]", "kwargs": "{}"}]
        await until(pilot, lambda: detail.record is not None and detail.record.state == "SUCCESS", "SUCCESS")
        body = str(detail.query_one("#detail-body", Static).render())
        assert "SUCCESS" in body and "result" in body and "5" in body
        await pilot.press("escape")  # back to the form it was sent from
        assert app.screen is screen
        await pilot.press("escape", "2")
        assert isinstance(app.screen, TasksScreen)
        await until(pilot, lambda: detail.task_id in table_ids(app), "the task in the table")
        assert app.screen.query_one(TaskTable).row(detail.task_id).state == "SUCCESS"


@sync
async def test_a_submits_detail_goes_back_to_submit_and_details_never_pile_up(eager_stack) -> None:
    """Each submit pushed a detail onto Tasks: esc went to Tasks, and after three submits 2 showed the
    oldest detail and took three escapes. The detail opens over the form, one at a time."""
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[2, 3]")
        sent: list[str] = []
        for back in ("escape", "7", None):  # esc, or Submit's own key, goes back to the form
            await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict")
            await pilot.press("ctrl+s")
            detail = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, "detail")
            assert detail.task_id not in sent and app.screen_stack == [screen, detail]
            assert app.current_mode == "submit" and detail.query_one(ModeBar).current == "submit"
            sent.append(detail.task_id)
            if back:
                await pilot.press(back)
                assert app.screen is screen and app.screen_stack == [screen]
        await pilot.press("escape")  # once, after the third
        assert app.screen is screen and app.screen_stack == [screen]
        await pilot.press("escape", "2")  # Tasks holds no detail: its table, the three sent in it
        assert isinstance(app.screen, TasksScreen) and len(app.screen_stack) == 1
        await until(pilot, lambda: set(sent) <= set(table_ids(app)), "the three tasks in the table")
        await pilot.press("enter")  # a detail opened from Tasks goes back to Tasks
        detail = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, "detail")
        assert detail.query_one(ModeBar).current == "tasks"
        app.post_message(OpenTask(sent[0]))  # another one (Hooks' enter) replaces it
        await until(pilot, lambda: app.screen.task_id == sent[0], "the other detail")
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        assert isinstance(app.screen, TasksScreen)


@sync
async def test_typed_arguments_go_between_the_brackets(eager_stack) -> None:
    """Keys only, as a user types them: the cursor waits inside `[]` and `{}`."""
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("7")
        await idle(pilot)
        await pilot.press("ctrl+l", *"demo.add", "enter", *"2, 3", "tab", *'"x": 1')
        screen = app.screen
        assert screen.query_one("#args", TextArea).text == "[2, 3]"
        assert screen.query_one("#kwargs", TextArea).text == '{"x": 1}'
        await pilot.press(*["backspace"] * 6, "shift+tab", "ctrl+s")  # kwargs back to {}, args kept
        await until(pilot, lambda: screen.sent, "the submit")
        assert screen.sent == [{"name": "demo.add", "args": "[2, 3]", "kwargs": "{}"}]


@sync
async def test_escape_leaves_a_submit_field_and_number_keys_switch_again(eager_stack) -> None:
    """Every Submit field takes printable keys (the task name has focus on arrival): a keyboard user
    typed `2` into the field and could not leave the screen."""
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("7")
        await idle(pilot)
        screen = app.screen
        assert isinstance(screen, SubmitScreen) and screen.focused is not None
        await pilot.press("ctrl+l", *"demo.add", "enter", "1")
        assert screen.query_one("#args", TextArea).text == "[1]"
        assert "Leave field" in screen.query_one(KeyBar).layout_for(screen)[0]
        await pilot.press("escape", "2")
        assert isinstance(app.screen, TasksScreen)
        await pilot.press("7")  # back: in the task name again, the form as it was left
        assert app.screen is screen and screen.focused is screen.query_one("#task-name", Input)
        assert screen.task_name == "demo.add" and screen.query_one("#args", TextArea).text == "[1]"
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)


@sync
async def test_the_task_sent_is_always_the_one_named_in_the_box(eager_stack) -> None:
    """Submit demo.add, come back, ctrl+l, type demo.nope: the pane still showed demo.add(x, y) and
    ready, and ctrl+s sent demo.add. A name that matches no task unpicks; Enter puts the pick in the box."""
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[1, 2]")
        await until(pilot, lambda: "ready" in problems_text(screen), "ready")
        await pilot.press("ctrl+l", *"demo.nope")
        assert screen.task_name is None
        assert "no task named demo.nope" in str(screen.query_one("#task-doc", Static).render())
        await idle(pilot)
        assert "ready" not in problems_text(screen)
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert screen.sent == [] and isinstance(app.screen, SubmitScreen)
        await pilot.press("ctrl+l", "4")  # a digit typed in the box (the screen key) names no task either
        assert screen.task_name is None and screen.query_one("#task-name", Input).value == "4"
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert screen.sent == []
        await pilot.press("ctrl+l", *"slow_ad", "enter")  # Enter takes the first match: the box says so
        assert screen.task_name == "demo.slow_add"
        assert screen.query_one("#task-name", Input).value == "demo.slow_add"


@sync
async def test_detail_has_the_mode_bar_and_number_keys_leave_it(eager_stack) -> None:
    app = app_with(eager_stack, busy_store())
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        app.post_message(OpenTask(LOST))
        detail = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, "detail")
        assert detail.query_one(ModeBar).current == "tasks"
        await pilot.press("3")
        assert app.current_mode == "workers"
        await pilot.press("2")  # back to Tasks: the detail is still where the user left it
        assert app.screen is detail
        await pilot.press("escape")
        assert isinstance(app.screen, TasksScreen)


@sync
async def test_bad_json_shows_line_and_column_and_sends_nothing(eager_stack) -> None:
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        before = len(eager_stack.events)
        screen = await fill_submit(pilot, "demo.add", "[2,\n 3 4]")
        assert "args: invalid JSON at line 2, column 4" in problems_text(screen)
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert screen.sent == [] and len(eager_stack.events) == before
        assert isinstance(app.screen, SubmitScreen)
        assert any("Not sent" in (n.title or "") for n in app._notifications)


class RecordingControl(Control):
    """A real Control (validation, force rules) whose last step, the publish, is recorded instead."""

    published: list[Any]

    def send(self, checked: Any) -> Any:
        self.published.append(checked)
        return type("Result", (), {"id": f"sent-{len(self.published)}"})()


@sync
async def test_warnings_need_a_second_ctrl_s_and_errors_never_send(eager_stack) -> None:
    control = redis_like_control(eager_stack)
    control.__class__ = RecordingControl
    control.published = []
    app = app_with(eager_stack, busy_store(), control)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.analyze_youtube", '["https://youtu.be/x"]')
        screen.query_one("#countdown", Input).value = "7200"
        await until(pilot, lambda: "visibility timeout" in problems_text(screen), "the control error")
        await pilot.press("ctrl+s")
        await idle(pilot)
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert control.published == [] and screen.sent == []
        screen.query_one("#countdown", Input).value = ""
        await until(pilot, lambda: "no worker consumes" in problems_text(screen)
                    and "visibility" not in problems_text(screen), "only the warning")
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert control.published == [] and "again to send anyway" in problems_text(screen)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the sent task's detail")
        assert [c.name for c in control.published] == ["demo.analyze_youtube"]
        assert app.screen.task_id == "sent-1"


@sync
async def test_resubmit_turns_reprs_back_into_json(eager_stack) -> None:
    store = busy_store()
    store.ingest({"type": "task-sent", "uuid": "cut-1", "name": "demo.add", "args": "('aaaa...', 2)",
                  "kwargs": "{}", "queue": "default", "timestamp": 1.0})
    app = app_with(eager_stack, store)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        app.post_message(OpenTask(LOST))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, "detail")
        await pilot.press("R")
        # the form is filled once Submit is on screen and took its focus: under load, frames after it shows
        screen = await until(pilot, lambda: isinstance(app.screen, SubmitScreen)
                             and app.screen.task_name == "demo.slow_add" and app.screen, "Submit filled")
        assert screen.query_one("#args", TextArea).text == "[1, 2]"
        assert screen.query_one("#kwargs", TextArea).text == '{"seconds": 30}'
        assert str(screen.query_one("#queue").value) == "slow"
        await pilot.press("2")  # no field has focus: the number keys switch, nothing is typed
        assert isinstance(app.screen, DetailScreen)  # Tasks, with the detail R left
        assert screen.query_one("#args", TextArea).text == "[1, 2]"
        await pilot.press("escape")
        app.post_message(OpenTask("cut-1"))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, "detail")
        await pilot.press("R")
        await until(pilot, lambda: screen.query_one("#args", TextArea).text == "('aaaa...', 2)", "refilled")
        assert "invalid JSON" in problems_text(screen)
        assert any("looks truncated" in str(n.message) for n in app._notifications)


def leave_field_enabled(screen: SubmitScreen) -> bool:
    keys = screen.query_one(KeyBar).shown_keys(screen)
    return next(enabled for _key, _text, enabled, action, _press in keys if action == "leave_field")


@sync
async def test_resubmit_lands_on_no_field_so_keys_keep_their_meaning(eager_stack) -> None:
    """After R the arguments box had focus: 4 typed `4[1, 2]` instead of going to Beat, and nothing said
    so. The form is filled with no field focused (esc Leave field dimmed); tab or ctrl+l enters it."""
    app = app_with(eager_stack, busy_store())
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        app.post_message(OpenTask(LOST))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, "detail")
        await pilot.press("R")
        screen = await until(pilot, lambda: isinstance(app.screen, SubmitScreen)
                             and app.screen.query_one("#args", TextArea).text == "[1, 2]" and app.screen,
                             "Submit filled")
        assert screen.focused is None and not leave_field_enabled(screen)
        await pilot.press("4")
        assert app.current_mode == "beat" and screen.query_one("#args", TextArea).text == "[1, 2]"
        await pilot.press("7")  # back to the form as R left it, in the task name as on any arrival
        assert app.screen is screen and screen.task_name == "demo.slow_add"
        assert screen.focused is screen.query_one("#task-name", Input) and leave_field_enabled(screen)


@sync
async def test_resubmit_from_a_submits_detail_goes_back_to_that_form(eager_stack) -> None:
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[4, 5]")
        await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, "detail")
        screen.query_one("#args", TextArea).text = "[0, 0]"  # changed since: R fills it as the task was sent
        await pilot.press("R")
        await until(pilot, lambda: app.screen is screen and screen.query_one("#args", TextArea).text == "[4, 5]",
                    "the form refilled")
        assert app.screen is screen and app.screen_stack == [screen] and screen.focused is None
        assert screen.task_name == "demo.add" and screen.query_one("#args", TextArea).text == "[4, 5]"


@sync
async def test_the_tasks_screen_keeps_the_search_texts_and_an_index_for_every_sort_key(eager_stack) -> None:
    """Built when the screen first shows and never freed: a sort key's first use and a search's first
    key answer on the UI thread (the store's quick read) instead of waiting for a build of the store."""
    app = live_app(eager_stack)
    store = eager_stack.events
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        wanted = set(SORT_KEYS) - {"received"} | {"search"}
        await until(pilot, lambda: wanted <= set(store._indexes), "every sort index and the search texts")
        assert wanted <= store._pinned
        for key in wanted - {"search"}:
            store.query(sort_key=key, search="demo", wait=0.5)  # a quick read: StoreBusy if one were missing


@sync
async def test_filter_search_and_sort_narrow_the_table(eager_stack) -> None:
    control = eager_stack.control
    ok = [control.submit({"name": "demo.add", "args": [i, 1000]}).id for i in range(3)]
    failed = control.submit({"name": "demo.fail", "args": ["filter-me"]}).id
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: set(ok) | {failed} <= set(table_ids(app)), "the tasks in the table")
        await pilot.press("slash", *"state:failure")
        await until(pilot, lambda: failed in table_ids(app) and not set(ok) & set(table_ids(app)), "failures only")
        assert all(app.screen.query_one(TaskTable).row(t).state == "FAILURE" for t in table_ids(app))
        await pilot.press("escape")
        await until(pilot, lambda: set(ok) <= set(table_ids(app)), "the filter cleared")
        await pilot.press("slash", *ok[1][:13])
        await until(pilot, lambda: table_ids(app) == [ok[1]], "one task by id")
        await pilot.press("escape", "f", "f", "f", "f", "f", "f", "f")  # none -> ... -> FAILURE
        await until(pilot, lambda: app.screen.filter.state == "FAILURE" and failed in table_ids(app)
                    and not set(ok) & set(table_ids(app)), "the state filter key")
        await pilot.press("escape", "o")
        await until(pilot, lambda: app.screen.filter.sort_key == "name" and table_ids(app), "sort by name")
        names = [app.screen.query_one(TaskTable).row(t).name for t in table_ids(app)]
        assert names == sorted(names, reverse=True)
        await pilot.press("O")
        await until(pilot, lambda: not app.screen.filter.reverse, "ascending")
        names = [app.screen.query_one(TaskTable).row(t).name for t in table_ids(app)]
        assert names == sorted(names)
        await pilot.click(TaskTable, offset=(2, 0))  # the "state" header
        await until(pilot, lambda: app.screen.filter.sort_key == "state", "sort by the clicked column")
        await pilot.click(TaskTable, offset=(2, 0))  # again: the other direction
        await until(pilot, lambda: app.screen.filter.reverse, "the clicked column reversed")


@sync
async def test_a_search_for_arguments_reads_back_in_the_status_line(eager_stack) -> None:
    """Args show as `[2, 3]`, so a search may hold brackets: a search for `[ok]` was markup and the
    status line read `filter: “”`."""
    control = eager_stack.control
    wanted = control.submit({"name": "demo.fail", "args": ["[ok] boom"]}).id
    other = control.submit({"name": "demo.fail", "args": ["boom"]}).id
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: {wanted, other} <= set(table_ids(app)), "the tasks in the table")
        await pilot.press("slash", *"[ok]")
        await until(pilot, lambda: table_ids(app) == [wanted], "the search by arguments")
        status = str(app.screen.query_one("#task-status", Label).render())
        assert "filter: “[ok]”" in status and "sort:" in status, status


def test_a_stored_revoke_shows_until_the_workers_act_on_it() -> None:
    """Celery reports a revoked task held for its eta only when it comes due, and a revoked running
    task not at all: the detail says what was asked and what will happen."""
    queued = TaskRecord("q-1", name="demo.slow_add", state="RECEIVED", eta="2030-01-31T09:00:00+00:00")
    asked = RevokeEntry("q-1", FROZEN)
    body = render_detail("q-1", DetailData(queued, revoke=asked))
    assert "revoke requested" in body and "workers discard it when it comes due (eta 2030-01-31 09:00:00)" in body
    running = TaskRecord("r-1", name="demo.long_running", state="PROGRESS")
    assert "runs to its end (t terminates it)" in render_detail("r-1", DetailData(running, revoke=asked))
    killed = RevokeEntry("r-1", FROZEN, terminate=True, signal="SIGKILL")
    assert "SIGKILL sent to the task" in render_detail("r-1", DetailData(running, revoke=killed))
    assert "revoke requested" not in render_detail("q-1", DetailData(queued))


@sync
async def test_revoke_asks_first_and_finished_tasks_are_left_alone(eager_stack) -> None:
    control = redis_like_control(eager_stack)
    calls: list[tuple] = []
    control.revoke_many = lambda task_ids, terminate=False, signal="SIGTERM": calls.extend(  # (the API's call)
        (task_id, terminate) for task_id in task_ids)
    app = app_with(eager_stack, busy_store(), control)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        app.post_message(OpenTask(PROGRESS))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.record, "detail")
        await pilot.press("v")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await idle(pilot)
        assert calls == []
        await pilot.press("t", "y")
        await idle(pilot)
        assert calls == [(PROGRESS, True)]
        await pilot.press("escape")
        app.post_message(OpenTask(FAILED))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.task_id == FAILED
                    and app.screen.record, "detail")
        await pilot.press("v")
        await idle(pilot)
        assert not isinstance(app.screen, ConfirmScreen) and calls == [(PROGRESS, True)]


@sync
async def test_a_filter_key_while_the_store_is_busy_still_gets_its_rows(eager_stack) -> None:
    """The key's own query gives up on a busy store after INLINE_WAIT; the worker answers instead."""
    store = busy_store()
    app = app_with(eager_stack, store)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: len(table_ids(app)) > 3, "the busy store's rows")
        screen = app.screen
        assert isinstance(screen, TasksScreen)
        with store._lock:  # a long writer (a history load, a burst) holds the store
            screen.set_filter(TaskFilter(state="FAILURE"))
            assert screen._dirty or screen._inflight  # handed over, not shown from a stale read
        await until(pilot, lambda: table_ids(app) and all(
            app.screen.query_one(TaskTable).row(t).state == "FAILURE" for t in table_ids(app)), "failures")


@sync
async def test_a_refused_submit_quoting_markup_is_a_notice_not_a_crash(eager_stack) -> None:
    """The refusal quotes what was typed: `[/]` typed as the eta made the toast's markup invalid and the
    panel died rendering it (MarkupError; seen in a terminal: tests run without toasts unless asked)."""
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[1, 2]")
        screen.query_one("#eta", Input).focus()
        await pilot.press("left_square_bracket", "slash", "right_square_bracket")
        await until(pilot, lambda: "eta" in problems_text(screen), "the eta problem")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen.query("Toast"), "the refusal's toast")
        app.export_screenshot()  # renders every widget, the toast too, as a terminal would
        toasts = [str(toast.render()) for toast in app.screen.query("Toast")]
        assert any("got '[/]'" in text for text in toasts), toasts
        assert app.is_running and app.screen is screen
