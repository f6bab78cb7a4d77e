"""The live task table: a diff against the rows on screen (add, remove, update cells, re-order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

from ..colours import colour, state_text
from ..formatting import clock_time, duration
from ..task_rows import TaskRow

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


class TaskTable(DataTable):
    """Shows at most the rows the store returned (a limited, virtualised view of a large store)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._rows: dict[str, TaskRow] = {}
        self._order: list[str] = []
        self.updates = 0  # cells touched by the last show (tests and bench read it)

    def on_mount(self) -> None:
        for column, width in zip(COLUMNS, WIDTHS, strict=True):
            self.add_column(column, key=column, width=width)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(self, rows: Sequence[TaskRow], variables: Mapping[str, str]) -> None:
        wanted = {r.task_id: r for r in rows}
        order = [r.task_id for r in rows]
        touched = 0
        for gone in [k for k in self._rows if k not in wanted]:
            self.remove_row(gone)
            del self._rows[gone]
            touched += 1
        for row in rows:
            old = self._rows.get(row.task_id)
            if old is None:
                self.add_row(*cells(row, variables), key=row.task_id)
                touched += 1
            elif old != row:
                for column, new, before in zip(COLUMNS, cells(row, variables), cells(old, variables), strict=True):
                    if str(new) != str(before) or column == "state":
                        self.update_cell(row.task_id, column, new)
                        touched += 1
            self._rows[row.task_id] = row
        if order != self._order:
            self._reorder(order)
        self._order = order
        self.updates = touched

    def _reorder(self, order: list[str]) -> None:
        """Re-rank rows by the store's order (the id cell holds the full task id)."""
        selected = self.selected
        rank = {key: i for i, key in enumerate(order)}
        self.sort("id", key=lambda task_id: rank.get(str(task_id), len(rank)))
        if selected in rank:
            self.move_cursor(row=rank[selected], animate=False)
