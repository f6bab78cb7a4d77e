"""Beat schedule entries: task, schedule, args, last and next run (relative to the app clock), total runs."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from stalk.panel.beat_rows import BeatRow, ago, when
from stalk.panel.colours import colour
from stalk.panel.formatting import printable
from stalk.panel.widgets.keyed_table import KeyedTable


def beat_cells(row: BeatRow, now: float, variables: Mapping[str, str]) -> tuple[object, ...]:
    late = row.next_run is not None and row.next_run < now - 5
    next_style = colour("warning", variables) if late else ""
    if row.failed_at is not None:  # the newest send failed: the screen's status line says when and why
        last = Text("failed", style=colour("error", variables))
    else:
        last = Text(ago(row.last_run, now), style="" if row.last_run else "dim")
    return (Text(printable(row.name), style="bold"), printable(row.task), printable(row.schedule),
            Text(row.args, style="dim"), last, Text(when(row.next_run, now), style=next_style), f"{row.total:,}")


class BeatTable(KeyedTable):
    COLUMNS = ("entry", "task", "schedule", "args", "last run", "next run", "runs")
    WIDTHS = (20, 19, 18, 10, 10, 23, 6)  # schedule: "cron 1 0 * * * PST" whole; next run: "05-29 07:01:00 (in 11h)"
    FLEX = {"entry": 36, "task": 40, "args": None}

    def show_entries(self, rows: list[BeatRow], now: float, variables: Mapping[str, str]) -> None:
        self.show([(r.name, beat_cells(r, now, variables)) for r in rows])
