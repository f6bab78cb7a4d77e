"""TaskTable under live batches: many rows in and out at once, the cursor stays on its task."""

from __future__ import annotations

from textual.app import App, ComposeResult

from stalk.panel.task_rows import TaskRow
from stalk.panel.widgets.task_table import TaskTable

from .conftest import SIZE
from .harness import sync


def row(i: int, state: str = "SUCCESS") -> TaskRow:
    return TaskRow(f"task-{i:05d}", state, "demo.add", f"[{i},1]", "celery@default", "default",
                   1_780_000_000.0 + i, 0.01, 0, None)


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield TaskTable()


def keys(table: TaskTable) -> list[str]:
    return table.task_ids


@sync
async def test_a_batch_of_new_tasks_keeps_the_cursor_on_its_task() -> None:
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(TaskTable)
        variables = app.get_css_variables()
        rows = [row(i) for i in range(500, 0, -1)]  # newest first
        table.show(rows, variables)
        table.move_cursor(row=10)
        chosen = table.selected
        newer = [row(i) for i in range(550, 500, -1)]
        table.show(newer + rows[:450], variables)  # 50 new on top, 50 old gone
        assert table.updates == 100
        assert keys(table) == [r.task_id for r in newer + rows[:450]]
        assert table.selected == chosen and table.cursor_row == 60
        await pilot.pause()
        assert table.virtual_size.height == 1 + 500  # header + rows


@sync
async def test_changed_rows_re_render_and_the_cursor_is_clamped_when_rows_go() -> None:
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(TaskTable)
        variables = app.get_css_variables()
        table.show([row(i) for i in range(100)], variables)
        table.move_cursor(row=90)
        table.show([row(i, "FAILURE" if i == 2 else "SUCCESS") for i in range(5)], variables)
        assert table.row_count == 5 and table.cursor_row == 4
        assert table.row("task-00002").state == "FAILURE"
        table.show([row(i) for i in reversed(range(5))], variables)  # re-ordered only
        assert keys(table) == [f"task-{i:05d}" for i in reversed(range(5))]
        await pilot.pause()
        assert table.virtual_size.height == 1 + 5


def painted(table: TaskTable) -> list[tuple[str, object]]:
    """The table's lines as the screen gets them (through Textual's line cache): text and background."""
    strips = table.render_lines(table.size.region)
    return [(strip.text, strip._segments[0].style.bgcolor if strip._segments else None) for strip in strips]


@sync
async def test_a_cursor_move_and_a_changed_row_repaint_their_lines_only() -> None:
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(TaskTable)
        variables = app.get_css_variables()
        rows = [row(i) for i in range(50)]
        table.show(rows, variables)
        await pilot.pause()
        before = painted(table)
        cursor_bg = before[1][1]
        assert before[2][1] != cursor_bg
        await pilot.press("down")
        after = painted(table)
        assert table.cursor_row == 1 and after[2][1] == cursor_bg and after[1][1] != cursor_bg
        assert after[3:] == before[3:]
        table.show([row(i, "FAILURE" if i == 3 else "SUCCESS") for i in range(50)], variables)
        await pilot.pause()
        changed = painted(table)
        assert "FAILURE" in changed[4][0] and "FAILURE" not in after[4][0]
        assert changed[:4] == after[:4] and changed[5:] == after[5:]
