"""Waiting messages per queue with a bar scaled to the deepest queue, and who consumes it."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from stalk.panel.colours import colour
from stalk.panel.formatting import bar, printable
from stalk.panel.widgets.keyed_table import KeyedTable
from stalk.panel.workers_data import QueueRow

BAR = 24


def queue_cells(row: QueueRow, top: int, variables: Mapping[str, str]) -> tuple[object, ...]:
    if row.waiting is None:
        depth, meter = Text("?", style="dim"), Text("", style="dim")
    else:
        role = "warning" if row.waiting else "foreground-muted"
        depth = Text(f"{row.waiting:,}", style="bold" if row.waiting else "dim")
        meter = Text(bar(row.waiting / max(top, 1), BAR), style=colour(role, variables))
    consumers = Text(printable(", ".join(row.consumers))) if row.consumers else Text(
        "nobody consumes it", style=colour("warning", variables))
    return (Text(printable(row.name), style="bold"), depth, meter, consumers)  # names from the broker


class QueueTable(KeyedTable):
    COLUMNS = ("queue", "waiting", "depth", "consumed by")
    WIDTHS = (20, 8, BAR, 40)
    FLEX = {"queue": 36, "consumed by": None}

    def show_queues(self, rows: list[QueueRow], variables: Mapping[str, str]) -> None:
        top = max((r.waiting or 0 for r in rows), default=0)
        self.show([(r.name, queue_cells(r, top, variables)) for r in rows])
