"""One quota's day at a glance: used / priority reserve / remaining bar, rate, forecast and reset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.widgets import Static

from stalk.panel.formatting import duration
from stalk.panel.markup_text import escape
from stalk.panel.widgets.quota_meter import quota_bar

WIDTH = 60


def _at(when: datetime, now: float) -> str:
    local = when.strftime("%H:%M %Z").strip()
    day = "" if when.date() == datetime.fromtimestamp(now, when.tzinfo).date() else when.strftime("%a ")
    delta = when.timestamp() - now
    rel = f"in {duration(delta)}" if delta >= 0 else f"{duration(-delta)} ago"
    return f"{day}{local} ({rel})"


def forecast(status: Any, now: float) -> str:
    rate = float(status.rate_per_hour)
    if status.exhausted:
        since = f" since {_at(status.exhausted_at, now)}" if status.exhausted_at else ""
        if status.remaining > 0:
            rest = f"{status.remaining:,} units left, too few for a {status.refused_units:,}-unit call"
        else:
            rest = "only priority calls" if status.reserved > 0 else "calls are refused"
        return f"[$error]exhausted{since}[/]: {rest} until the reset"
    if status.exhausted_at is not None and status.exhausted_at.timestamp() > now:
        return f"[$warning]at {rate:,.0f}/h runs out {_at(status.exhausted_at, now)}[/]"
    if rate <= 0:
        return "[$foreground-muted]idle in the last hour[/]"
    return f"[$success]at {rate:,.0f}/h lasts until the reset[/]"


def summary(status: Any, now: float) -> str:
    used, reserved, limit, remaining = status.used, status.reserved, status.limit, status.remaining
    lines = [
        f"{quota_bar(used, reserved, limit, WIDTH)}  [b]{used / limit * 100 if limit else 0:.0f}%[/b] used",
        f"[$success]█[/] used [b]{used:,}[/b]   [$warning]▒[/] priority reserve [b]{reserved:,}[/b]   "
        f"░ remaining [b]{remaining:,}[/b]   of [b]{limit:,}[/b] a day",
        f"forecast: {forecast(status, now)}",
        f"resets {_at(status.resets_at, now)}   "
        f"denied today [b]{getattr(status, 'denied', 0):,}[/b]   unsettled [b]{getattr(status, 'pending', 0):,}[/b]",
    ]
    return "\n".join(lines)


class QuotaSummary(Static):
    DEFAULT_CSS = "QuotaSummary { height: auto; padding: 0 1; }"

    def show(self, status: Any | None, now: float) -> None:
        if status is None:
            self.update("")
            return
        self.update(f"[b]{escape(status.name)}[/b]\n" + summary(status, now))
