"""Units used per day for the last days, one bar per day against the daily limit."""

from __future__ import annotations

from datetime import date

from textual.widgets import Static

from stalk.panel.formatting import bar

WIDTH = 16


def history_lines(days: list[tuple[date, int]], limit: int, width: int = WIDTH) -> list[str]:
    top = max([limit, *(used for _d, used in days)]) or 1
    lines = []
    for day, used in reversed(days):  # newest first, like the request log
        role = "$error" if limit and used >= limit else ("$primary" if used else "$foreground-muted")
        lines.append(f"{day:%a %m-%d} [{role}]{bar(used / top, width)}[/] {used:>7,}")
    return lines


class QuotaHistory(Static):
    DEFAULT_CSS = "QuotaHistory { height: auto; padding: 0 1; }"

    def show(self, days: list[tuple[date, int]], limit: int) -> None:
        title = f"[b]Last {len(days)} days[/b]" if days else "[b]History[/b]"
        body = history_lines(days, limit) or ["[$foreground-muted]no history yet[/]"]
        self.update("\n".join([title, *body]))
