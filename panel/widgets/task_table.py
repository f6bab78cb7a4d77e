"""The live task table: rows diffed against those on screen (new, gone, changed, moved), applied at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets._data_table import Row, RowKey

from ..colours import colour, state_text
from ..formatting import clock_time, duration
from ..task_rows import TaskRow
from .keyed_table import RowTable

COLUMNS = ("state", "name", "id", "args", "worker", "queue", "received", "runtime", "retries", "progress")
WIDTHS = (9, 16, 8, 15, 10, 8, 8, 7, 3, 14)
BAR = 10


def progress_text(row: TaskRow, variables: Mapping[str, str]) -> Text:
    if row.progress is None:
        return Text("")
    full = int(row.progress * BAR)
    return Text("█" * full, style=colour("primary", variables)) + Text(
        "░" * (BAR - full) + f"{row.progress * 100:3.0f}%", style="dim")


def cells(row: TaskRow, variables: Mapping[str, str]) -> tuple[object, ...]:
    return (state_text(row.state, variables), row.name, row.task_id, Text(row.args, style="dim"),
            row.worker, row.queue, clock_time(row.received), duration(row.runtime),
            str(row.retries or ""), progress_text(row, variables))


class TaskTable(RowTable):
    """Shows at most the rows the store returned (a limited, virtualised view of a large store)."""

    COLUMNS, WIDTHS = COLUMNS, WIDTHS

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, TaskRow] = {}
        self._order: list[str] = []
        self.updates = 0  # cells touched by the last show (tests and bench read it)

    def show(self, rows: Sequence[TaskRow], variables: Mapping[str, str]) -> None:
        """Diff `rows` against the rows on screen and apply it in one pass (see `_apply`)."""
        data = self._data
        column_keys = [column.key for column in self.ordered_columns]
        order: list[str] = []
        changed: dict[str, dict] = {}
        touched = 0
        for row in rows:
            order.append(row.task_id)
            old = self._rows.get(row.task_id)
            if old is None:
                changed[row.task_id] = dict(zip(column_keys, cells(row, variables), strict=True))
                touched += 1
            elif old != row:
                new = cells(row, variables)
                before = data[row.task_id].values()  # type: ignore[index]
                touched += sum(1 for column, a, b in zip(COLUMNS, new, before, strict=True)
                               if column == "state" or str(a) != str(b))
                changed[row.task_id] = dict(zip(column_keys, new, strict=True))
        wanted = set(order)
        touched += sum(1 for key in self._rows if key not in wanted)
        self._rows = {row.task_id: row for row in rows}
        if changed or order != self._order:
            self._apply(order, changed)
        self._order = order
        self.updates = touched

    def _apply(self, order: list[str], changed: dict[str, dict]) -> None:
        """Replace the table's rows in one O(n) pass, keeping the cursor on its task.

        DataTable's remove_row and add_row re-index all rows per call, so a batch of k new tasks
        cost O(k·n) at 1,000 events/s. This writes DataTable's row maps directly (Textual is pinned
        exactly; tests/panel/test_task_screens.py covers the result)."""
        selected = self.selected
        data, rows = self._data, self.rows
        new_data: dict[RowKey, dict] = {}
        new_rows: dict[RowKey, Row] = {}
        for task_id in order:
            row = rows.get(task_id)  # type: ignore[call-overload]
            key = row.key if row is not None else RowKey(task_id)
            new_rows[key] = row if row is not None else Row(key, 1)
            cells_of = changed.get(task_id)
            new_data[key] = cells_of if cells_of is not None else data[key]
        data.clear()
        data.update(new_data)
        rows.clear()
        rows.update(new_rows)
        self._row_locations = TwoWayDict({key: index for index, key in enumerate(new_data)})
        self._updated_cells.clear()
        self._clear_caches()
        self._update_count += 1
        self._require_update_dimensions = True  # virtual size (columns are fixed width: nothing to measure)
        self.check_idle()
        self.refresh()
        index = order.index(selected) if selected in new_rows else None
        if index is not None and index != self.cursor_row:
            self.move_cursor(row=index, animate=False)
        else:
            self.cursor_coordinate = self.cursor_coordinate  # clamped to the new row count
