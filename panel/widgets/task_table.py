"""The live task table: a Line-API widget that draws only the rows on screen, each from a strip cache.

DataTable re-renders every visible cell after any change and keeps many objects per cell; at 1,000
events/s that cost ~35 ms a frame (bench/panel_load.py). Here `show()` only swaps the row list; a
line is rendered when it is on screen and its row (a TaskRow tuple) or its look changed, so a live
refresh costs a dict lookup per visible line. A row's cells are rendered once per row value
(task_cells.py); striping and the cursor only restyle them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import date

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from stalk.panel.formatting import clock_width
from stalk.panel.task_rows import TaskRow
from stalk.panel.widgets.task_cells import (
    COLUMNS,
    PAD,
    RECEIVED_WIDTH,
    WIDTHS,
    CellStyles,
    column_widths,
    header_text,
    row_segments,
    row_width,
)

ODD, EVEN, CURSOR = 0, 1, 2
STRIPS_KEPT = 120  # rendered lines kept (about three screenfuls), then all dropped at once
CONTENTS_KEPT = 400  # rendered rows kept (before their line's look), likewise
# Kept small on purpose: a Textual Strip carries seven caches and the strips derived from it, all
# tracked by the garbage collector, whose full pauses grew with them (bench/panel_load.py).


def changed_fields(old: TaskRow, new: TaskRow) -> int:
    return sum(1 for a, b in zip(old, new, strict=True) if a != b)


class TaskTable(ScrollView, can_focus=True):
    """Rows of TaskRow with a row cursor that stays on its task while rows come and go."""

    COMPONENT_CLASSES = {"task-table--header", "task-table--cursor", "task-table--even-row"}
    DEFAULT_CSS = """
    TaskTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .task-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .task-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .task-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .task-table--even-row { background: $surface-darken-1 40%; }
        & > .task-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First", show=False),
        Binding("end,ctrl+end", "last", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    class RowSelected(Message):
        """Enter, or a click on the row under the cursor."""

        def __init__(self, task_id: str) -> None:
            super().__init__()
            self.task_id = task_id

    class HeaderSelected(Message):
        """A click on a column title."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rows: dict[str, TaskRow] = {}
        self._order: list[str] = []
        self._variables: Mapping[str, str] = {}
        self._strips: dict[tuple[TaskRow, int], Strip] = {}
        self._content: dict[TaskRow, list[Segment]] = {}  # a row's cells, before its line's look
        self._cell_styles: CellStyles | None = None
        self._line_styles: dict[int, tuple[Style, Style | None]] = {}  # kind -> (base, post), per look
        self._frame = (0, 0)  # width and first row shown, read once per render_lines
        self._header: Strip | None = None
        self._widths: tuple[int, ...] = WIDTHS
        self._received_width = RECEIVED_WIDTH
        self._now: float | None = None  # the panel's clock at the last show: rows of another day show their date
        self._day = 0
        self._sort: tuple[str, bool] | None = None
        self.cursor_row = 0
        self.updates = 0  # fields changed by the last show (tests and bench read it)

    # -- rows -----------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def task_ids(self) -> list[str]:
        return list(self._order)

    def row(self, task_id: str) -> TaskRow | None:
        return self._rows.get(task_id)

    @property
    def selected(self) -> str | None:
        """The task under the cursor."""
        return self._order[self.cursor_row] if self._order else None

    def show(self, rows: Sequence[TaskRow], variables: Mapping[str, str]) -> None:
        """Make `rows` the table's rows; the cursor stays on its task if it is still there."""
        if variables != self._variables:
            self._variables = dict(variables)
            self._forget_strips()
        self._follow_clock(rows)
        selected = self.selected
        old = self._rows
        new = {row.task_id: row for row in rows}
        order = list(new)
        touched = sum(1 for key in old if key not in new)
        changed: list[int] = []  # indexes of rows whose values changed
        for index, row in enumerate(rows):
            before = old.get(row.task_id)
            if before is None:
                touched += 1
            elif before != row:
                touched += changed_fields(before, row)
                changed.append(index)
        self.updates = touched
        if order == self._order:  # the same rows in the same places: repaint the lines that changed
            self._rows = new
            self._refresh_rows(changed)
            return
        self._rows, self._order = new, order
        self.virtual_size = Size(self.size.width, 1 + len(order))
        self._set_cursor(order.index(selected) if selected in new else self.cursor_row)
        self.refresh()

    def _follow_clock(self, rows: Sequence[TaskRow]) -> None:
        """The received column shows dates for rows of another day (wider), and a new day redraws it."""
        clock = getattr(self.app, "clock", time.time)
        now = self._now = clock()
        day = date.fromtimestamp(now).toordinal()
        width = clock_width([row.received for row in rows], now)
        if day == self._day and width == self._received_width:
            return
        self._day, self._received_width = day, width
        if self.size.width:
            self._widths = column_widths(self.size.width, width)
        self._forget_strips()
        self.refresh()

    def _refresh_rows(self, indexes: Sequence[int]) -> None:
        """Repaint only these rows' lines (those on screen): the rest of the table keeps its cached lines."""
        top, body = round(self.scroll_offset.y), self.size.height - 1
        lines = [Region(0, 1 + index - top, self.size.width, 1) for index in indexes if top <= index < top + body]
        if lines:
            self.refresh(*lines)

    def set_sort(self, column: str, reverse: bool) -> None:
        """Mark the sorted column in the header."""
        if self._sort != (column, reverse):
            self._sort = (column, reverse)
            self._header = None
            self.refresh()

    # -- cursor ---------------------------------------------------------------------------------

    def move_cursor(self, row: int, animate: bool = False) -> None:
        """Put the cursor on `row` (clamped) and scroll it into view."""
        before, top = self.cursor_row, self.scroll_offset.y
        self._set_cursor(row)
        if self.scroll_offset.y == top:
            self._refresh_rows((before, self.cursor_row))
        else:
            self.refresh()

    def _set_cursor(self, row: int) -> None:
        self.cursor_row = max(0, min(row, len(self._order) - 1))
        body = max(1, self.size.height - 1)
        top = round(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + body:
            self.scroll_to(y=self.cursor_row - body + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.size.height - 2))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - 2))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def action_select(self) -> None:
        if self.selected is not None:
            self.post_message(self.RowSelected(self.selected))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x + round(self.scroll_offset.x))
            if column is not None:
                self.post_message(self.HeaderSelected(column))
            return
        index = round(self.scroll_offset.y) + offset.y - 1
        if index >= len(self._order):
            return
        if index == self.cursor_row:
            self.action_select()
        else:
            self.move_cursor(index)

    def _column_at(self, x: int) -> str | None:
        for column, width in zip(COLUMNS, self._widths, strict=True):
            x -= width + 2 * len(PAD)
            if x < 0:
                return column
        return None

    # -- rendering ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_strips()

    def on_resize(self, event: events.Resize) -> None:
        self._widths = column_widths(event.size.width, self._received_width)
        self.virtual_size = Size(event.size.width, 1 + len(self._order))
        self._forget_strips()
        self._set_cursor(self.cursor_row)

    def _forget_strips(self) -> None:
        self._strips.clear()
        self._content.clear()
        self._cell_styles = None
        self._line_styles.clear()
        self._header = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = (self.size.width, round(self.scroll_offset.y))  # not once per line (~20 µs each)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, top = self._frame
        if y == 0:
            if self._header is None:
                style = self.rich_style + self.get_component_rich_style("task-table--header")
                self._header = Strip([Segment(header_text(self._widths, self._sort), style)]).crop_extend(
                    0, width, style)
            return self._header
        index = top + y - 1
        if index >= len(self._order):
            return Strip.blank(width, self._line_style(ODD)[0])
        row = self._rows[self._order[index]]
        kind = CURSOR if index == self.cursor_row else (EVEN if index % 2 else ODD)
        strip = self._strips.get((row, kind))
        if strip is None:
            if len(self._strips) > STRIPS_KEPT:
                self._strips.clear()
            strip = self._strips[row, kind] = self._row_strip(row, kind, width)
        return strip

    def _row_strip(self, row: TaskRow, kind: int, width: int) -> Strip:
        """The row's cells (rendered once per row value) in the look of its line: plain, striped, cursor."""
        content = self._content.get(row)
        if content is None:
            if len(self._content) > CONTENTS_KEPT:
                self._content.clear()
            if self._cell_styles is None:
                self._cell_styles = CellStyles(self._variables)
            content = self._content[row] = row_segments(row, self._widths, self._cell_styles, self._now)
        base, post = self._line_style(kind)
        cells = row_width(self._widths)
        if cells > width:
            return Strip(Segment.apply_style(content, style=base, post_style=post)).crop_extend(0, width, base)
        if cells < width:
            content = [*content, Segment(" " * (width - cells))]
        return Strip(Segment.apply_style(content, style=base, post_style=post), width)

    def _line_style(self, kind: int) -> tuple[Style, Style | None]:
        """Base and post style of a plain, striped or cursor line (resolving them walks the DOM: ~90 µs)."""
        styles = self._line_styles.get(kind)
        if styles is None:
            base = self.rich_style
            if kind == EVEN:
                base += self.get_component_rich_style("task-table--even-row")
            post = self.get_component_rich_style("task-table--cursor") if kind == CURSOR else None
            styles = self._line_styles[kind] = (base, post)
        return styles
