"""One row per Celery worker: pool, concurrency, active/reserved/processed, load, heartbeat age, online."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from stalk.panel.colours import colour
from stalk.panel.formatting import printable, uptime_text
from stalk.panel.widgets.keyed_table import KeyedTable
from stalk.panel.workers_data import WorkerRow

STALE_AFTER = 10.0  # seconds without a heartbeat before the age is shown as a warning


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def status_text(row: WorkerRow, variables: Mapping[str, str]) -> Text:
    if row.online:
        return Text("online", style=f"bold {colour('success', variables)}")
    if row.heartbeat is None:
        return Text("unknown", style=colour("foreground-muted", variables))
    return Text("offline", style=f"bold {colour('error', variables)}")


def heartbeat_text(row: WorkerRow, now: float, variables: Mapping[str, str]) -> Text:
    if row.heartbeat is None:
        return Text("-", style="dim")
    age = max(0.0, now - row.heartbeat)
    style = colour("warning", variables) if age > STALE_AFTER else ""
    return Text(f"{uptime_text(age)} ago", style=style)


def worker_cells(row: WorkerRow, now: float, variables: Mapping[str, str]) -> tuple[object, ...]:
    load = " ".join(f"{x:.2f}" for x in row.load[:2]) or "-"  # 1 and 5 minutes
    return (Text(printable(row.hostname), style="bold"), status_text(row, variables), row.process or "-", row.pool,
            _num(row.concurrency), _num(row.active), _num(row.reserved), _num(row.processed), load,
            heartbeat_text(row, now, variables))


class WorkerTable(KeyedTable):
    COLUMNS = ("worker", "status", "process", "pool", "conc", "active", "reserved", "processed", "load 1m 5m",
               "heartbeat")
    WIDTHS = (24, 7, 15, 7, 4, 6, 8, 9, 10, 9)
    FLEX = {"worker": 48}

    def show_workers(self, rows: list[WorkerRow], now: float, variables: Mapping[str, str]) -> None:
        self.show([(r.hostname, worker_cells(r, now, variables)) for r in rows])
