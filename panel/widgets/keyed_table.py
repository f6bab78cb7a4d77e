"""A DataTable of keyed rows that is diffed, not rebuilt: the cursor stays on its row across refreshes."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable


class RowTable(DataTable):
    """A row-cursor table whose rows are keyed; subclasses set COLUMNS and WIDTHS (keys = titles)."""

    COLUMNS: tuple[str, ...] = ()
    WIDTHS: tuple[int | None, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        for column, width in zip(self.COLUMNS, self.WIDTHS, strict=True):
            self.add_column(column, key=column, width=width)

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
