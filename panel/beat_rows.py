"""Beat schedule entries turned into display rows (pure: times are formatted against a given `now`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stalk.panel.formatting import clock_time, duration, preview, printable
from stalk.panel.task_rows import field


def epoch(value: Any) -> float | None:
    """Epoch seconds from a datetime (naive = local), an ISO text or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def when(ts: float | None, now: float) -> str:
    """Local clock time (with the date when not today: formatting.clock_time) and how far from now."""
    if ts is None:
        return "-"
    at, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    clock = clock_time(ts, now)
    delta = ts - now
    if abs(delta) < 1:
        return f"{clock} (now)"
    span = duration(abs(delta)) if at.date() == today.date() else _coarse(abs(delta))
    return f"{clock} ({'in ' + span if delta > 0 else span + ' ago'})"


def ago(ts: float | None, now: float) -> str:
    """How long ago, alone (the last run's clock time matters less than its age)."""
    if ts is None:
        return "never"
    delta = now - ts
    return "just now" if abs(delta) < 1 else (f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}")


def _coarse(seconds: float) -> str:
    return f"{seconds / 86400:.0f}d" if seconds >= 86400 * 2 else f"{seconds / 3600:.0f}h"


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return duration(seconds)


FREQ = re.compile(r"^<freq:\s*([\d.]+)\s*(\w+)>$")
CRON = re.compile(r"^<crontab:\s*(.+?)\s*\(m/h/d(?:M|m)/M(?:Y|y)/d\)>$")


def schedule_text(value: Any) -> str:
    """Celery's schedule reprs made short: `<freq: 30.00 seconds>` -> `every 30s`, crontab -> `cron ...`."""
    text = str(value)
    if m := FREQ.match(text):
        unit = m.group(2).rstrip("s")
        seconds = float(m.group(1)) * {"second": 1, "minute": 60, "hour": 3600, "day": 86400}.get(unit, 1)
        return f"every {_every(seconds)}"
    if m := CRON.match(text):
        return f"cron {m.group(1)}"
    return "cron " + text.removeprefix("crontab ") if text.startswith("crontab ") else text


@dataclass(frozen=True)
class BeatRow:
    name: str
    task: str
    schedule: str
    args: str
    last_run: float | None
    next_run: float | None
    total: int
    queue: str | None
    failed_at: float | None = None  # the newest send failed (beat's or run now's): when
    error: str | None = None  # and why

    @classmethod
    def of(cls, entry: Any) -> BeatRow:
        args, kwargs = field(entry, "args", default=()), field(entry, "kwargs", default={})
        # beat stamps a new entry's last_run_at with its own start: no run yet means "never"
        total = int(field(entry, "total_run_count", "total", default=0) or 0)
        options = field(entry, "options", default={}) or {}
        last_run = epoch(field(entry, "last_run", "last_run_at")) if total else None
        failed_at = epoch(field(entry, "last_error_at"))
        failing = failed_at is not None and (last_run is None or failed_at >= last_run)
        text = preview(list(args) if isinstance(args, tuple) else args, 24) + (
            " " + preview(kwargs, 20) if kwargs else "")
        return cls(name=str(field(entry, "name", default="?")), task=str(field(entry, "task", default="?")),
                   schedule=schedule_text(field(entry, "schedule", default="-")), args=text,
                   last_run=last_run, next_run=epoch(field(entry, "next_run", "next_run_at")),
                   total=total,
                   queue=options.get("queue") if isinstance(options, dict) else None,
                   failed_at=failed_at if failing else None,
                   error=printable(" ".join(str(field(entry, "last_error", default="")).split())) or "send failed"
                   if failing else None)
