"""A DataTable of keyed rows that is diffed, not rebuilt: the cursor stays on its row across refreshes.
Its flexible columns share the width the others leave, so a wide terminal shows whole names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import DataTable


def fitted_widths(columns: Sequence[str], widths: Sequence[int], flex: Mapping[str, int | None], room: int,
                  padding: int = 1) -> tuple[int, ...]:
    """`widths` with what `room` leaves shared out among the `flex` columns, each up to its cap (None:
    no cap). Never narrower than `widths`: in a narrow terminal the table scrolls sideways rather
    than cut the names that tell its rows apart."""
    fitted = dict(zip(columns, widths, strict=True))
    spare = room - sum(widths) - 2 * padding * len(columns)
    growing = [c for c in flex if _can_grow(flex[c], fitted[c])]
    while spare > 0 and growing:
        share, extra = divmod(spare, len(growing))
        for i, column in enumerate(growing):
            cap = flex[column]
            give = share + (1 if i < extra else 0)
            give = give if cap is None else min(give, cap - fitted[column])
            fitted[column] += give
            spare -= give
        growing = [c for c in growing if _can_grow(flex[c], fitted[c])]
    return tuple(fitted[c] for c in columns)


def _can_grow(cap: int | None, width: int) -> bool:
    """A flexible column below its cap (None: no cap)."""
    return cap is None or width < cap


def plain(cell: object) -> object:
    """A str cell as plain Text: DataTable parses str cells as markup, and cells quote the user's app
    (a task name or quota key holding `[/]` raised MarkupError while rendering and the panel died)."""
    return Text(cell, end="") if isinstance(cell, str) else cell


class PlainTable(DataTable):
    """A DataTable whose str cells are shown as written."""

    def add_row(self, *cells: Any, **kwargs: Any) -> Any:
        return super().add_row(*map(plain, cells), **kwargs)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, plain(value), update_width=update_width)


class RowTable(PlainTable):
    """A row-cursor table whose rows are keyed; subclasses set COLUMNS and WIDTHS (keys = titles)."""

    COLUMNS: tuple[str, ...] = ()
    WIDTHS: tuple[int, ...] = ()
    FLEX: Mapping[str, int | None] = {}  # column -> widest it grows (None: no cap) with the width left

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        for column, width in zip(self.COLUMNS, self.WIDTHS, strict=True):
            self.add_column(column, key=column, width=width)

    def on_resize(self, _event: events.Resize) -> None:
        self.fit_columns(self.size.width - self.styles.scrollbar_size_vertical)

    def fit_columns(self, room: int) -> None:
        """Widen the FLEX columns to fill `room` cells (back to WIDTHS as it shrinks). DataTable has no
        public way to change a column's width: set it, then ask for the dimensions and cached lines
        again (private names: Textual is pinned, and tests/panel/test_table_widths.py would fail)."""
        if not self.FLEX:
            return
        widths = fitted_widths(self.COLUMNS, self.WIDTHS, self.FLEX, room, self.cell_padding)
        changed = False
        for key, width in zip(self.COLUMNS, widths, strict=True):
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is not None and column.width != width:
                column.width, changed = width, True
        if changed:
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    @property
    def selected(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class KeyedTable(RowTable):
    """`show([(key, cells), ...])` adds, removes and updates rows."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._plain: dict[str, tuple[str, ...]] = {}
        self._order: list[str] = []

    def show(self, rows: Sequence[tuple[str, Sequence[object]]]) -> None:
        keys = [key for key, _cells in rows]
        if keys[: len(self._order)] != self._order:  # re-ordered or rows gone (new rows only append)
            self._rebuild(rows)
            return
        for key, cells in rows:
            plain = tuple(str(c) for c in cells)
            old = self._plain.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            else:
                for column, cell, before, after in zip(self.COLUMNS, cells, old, plain, strict=True):
                    if before != after:
                        self.update_cell(key, column, cell)
            self._plain[key] = plain
        self._order = keys

    def _rebuild(self, rows: Sequence[tuple[str, Sequence[object]]]) -> None:
        """Rebuild, keeping the cursor on the same key when it survives."""
        keep = self.selected
        self.clear()
        self._plain.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
            self._plain[key] = tuple(str(c) for c in cells)
        self._order = [key for key, _cells in rows]
        if keep in self._order:
            self.move_cursor(row=self._order.index(keep), animate=False)
