"""Every supervised process, updated cell by cell (no rebuild), coloured by state."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from stalk.embedded import ProcessInfo
from stalk.panel.colours import state_text
from stalk.panel.formatting import size, uptime_text
from stalk.panel.widgets.keyed_table import RowTable

COLUMNS = ("process", "role", "state", "pid", "restarts", "uptime", "cpu%", "rss", "queues", "last error")
WIDTHS = (16, 6, 12, 7, 8, 7, 5, 7, 14, 18)  # state: "unresponsive"


def row_cells(p: ProcessInfo, now: float, variables: Mapping[str, str]) -> tuple[object, ...]:
    uptime = now - p.started_at if p.started_at and p.state.alive else None
    return (
        Text(p.name, style="bold"), p.role, state_text(p.state, variables), str(p.pid or "-"),
        str(p.restarts), uptime_text(uptime), f"{p.stats.cpu_percent:.1f}" if p.pid else "-",
        size(p.stats.rss) if p.pid else "-", ",".join(p.queues) or "-", Text(p.last_error or "", style="dim"),
    )


class ProcessTable(RowTable):
    """Row key = process name; `show(snapshot)` touches only cells whose text changed."""

    COLUMNS, WIDTHS = COLUMNS, WIDTHS
    FLEX = {"queues": 48, "last error": None}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._cells: dict[str, tuple[str, ...]] = {}

    def show(self, snapshot: tuple[ProcessInfo, ...], now: float, variables: Mapping[str, str]) -> None:
        names = [p.name for p in snapshot]
        for gone in set(self._cells) - set(names):
            self.remove_row(gone)
            del self._cells[gone]
        for p in snapshot:
            cells = row_cells(p, now, variables)
            plain = tuple(str(c) for c in cells)
            old = self._cells.get(p.name)
            if old is None:
                self.add_row(*cells, key=p.name)
            else:
                for column, cell, before, after in zip(COLUMNS, cells, old, plain, strict=True):
                    if before != after or column == "state":
                        self.update_cell(p.name, column, cell)
            self._cells[p.name] = plain
