"""A quota's request log, newest first: when, state, units, priority, key (the task id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.binding import Binding

from stalk.panel.colours import colour
from stalk.panel.task_rows import field
from stalk.panel.widgets.keyed_table import KeyedTable

STATE_ROLES = {"reserved": "primary", "ok": "success", "failed": "error", "refunded": "warning",
               "denied": "error"}


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone().strftime("%m-%d %H:%M:%S")
    return "-" if value is None else str(value)


def request_cells(row: Any, variables: Mapping[str, str]) -> tuple[object, ...]:
    state = str(field(row, "state", default="?"))
    settled = field(row, "settled")
    return (_time(field(row, "at", "created")), Text(state, style=colour(STATE_ROLES.get(state, "foreground-muted"),
                                                                          variables)),
            f"{field(row, 'units', default=0):,}", "priority" if field(row, "priority") else "",
            _time(settled) if settled else "-", str(field(row, "key", default="") or "-"))


class RequestLog(KeyedTable):
    """←/→ switch quotas even with the log focused (the log never scrolls sideways)."""

    BINDINGS = [Binding("left", "screen.previous_quota", show=False),
                Binding("right", "screen.next_quota", show=False)]
    COLUMNS = ("at", "state", "units", "", "settled", "key (task id)")
    WIDTHS = (14, 8, 6, 8, 14, 40)
    FLEX = {"key (task id)": None}

    def show_requests(self, rows: list[Any], variables: Mapping[str, str]) -> None:
        """Row key = state, key and time (denials may repeat a key), so the cursor follows its row."""
        keyed, seen = [], set()
        for row in rows:
            key = f"{field(row, 'state', default='')}:{field(row, 'key', default='')}:{_time(field(row, 'at'))}"
            while key in seen:
                key += "+"
            seen.add(key)
            keyed.append((key, request_cells(row, variables)))
        self.show(keyed)
