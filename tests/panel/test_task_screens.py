"""Tasks, Submit and Detail: flows that need no event store, the table diff, and snapshots."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static, TextArea

from panel.screens.submit import SubmitScreen
from panel.task_rows import TaskFilter, TaskRow, parse_filter
from panel.widgets.task_table import TaskTable

from .conftest import SIZE
from .harness import app_for, settle, sync


def row(i: int, state: str = "SUCCESS", progress: float | None = None) -> TaskRow:
    return TaskRow(f"task-{i:04d}", state, "demo.add", f"[{i},1]", "celery@default", "default",
                   1_780_000_000.0 - i, 0.01, 0, progress)


def test_filter_text_becomes_query() -> None:
    flt = parse_filter("state:failure name:demo.add queue:slow worker:celery@io boom now", TaskFilter())
    assert (flt.state, flt.name, flt.queue, flt.worker, flt.search) == (
        "FAILURE", "demo.add", "slow", "celery@io", "boom now")
    assert flt.query_kwargs(10)["limit"] == 10


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
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == "task-0999"


@sync
async def test_bad_json_shows_line_and_column_and_sends_nothing(eager_stack) -> None:
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        screen = app.screen
        assert isinstance(screen, SubmitScreen)
        screen.pick("demo.add")
        screen.query_one("#args", TextArea).text = "[2,\n 3 4]"
        await pilot.pause()
        problems = str(screen.query_one("#submit-problems", Static).render())
        assert "args: line 2, column 4" in problems
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.sent == []
        assert any("Not sent" in (n.title or "") for n in app._notifications)


def submit_with(text: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("7")
        await pilot.press(*"add")
        await pilot.pause()
        await pilot.press("enter")
        pilot.app.screen.query_one("#args", TextArea).text = text
        await pilot.pause()

    return run_before


def test_submit_bad_json_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=submit_with('[2, "x"'))


def test_submit_valid_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=submit_with("[2, 3]"))


def test_tasks_without_store_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, press=["2"])
