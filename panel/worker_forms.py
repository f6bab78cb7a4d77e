"""Input checks for the Workers screen's small modals: rate limits and autoscale bounds (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

RATE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")


@dataclass(frozen=True)
class RateLimit:
    task: str
    rate: str  # Celery rate text; "0" removes the limit


@dataclass(frozen=True)
class Autoscale:
    max: int
    min: int


def check_rate_limit(values: dict[str, str], known: tuple[str, ...] = ()) -> RateLimit:
    task, rate = values.get("task", ""), values.get("rate", "").replace(" ", "")
    if not task:
        raise ValueError("task: give a task name, e.g. demo.add")
    if known and task not in known:
        raise ValueError(f"task: no worker registered {task!r}")
    if not RATE.match(rate):
        raise ValueError(f"rate: {rate or 'empty'} is not a rate (N, N/s, N/m or N/h; 0 removes the limit)")
    return RateLimit(task, rate)


def _whole(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{name}: {text or 'empty'} is not a whole number")
    return int(text)


def check_autoscale(values: dict[str, str]) -> Autoscale:
    high = _whole(values.get("max", ""), "max")
    low = _whole(values.get("min", ""), "min")
    if high < 1:
        raise ValueError("max: at least 1 process")
    if low > high:
        raise ValueError(f"min ({low}) is above max ({high})")
    return Autoscale(high, low)
