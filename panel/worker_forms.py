"""Input checks for the Workers screen's small modals: rate limits and autoscale bounds (pure). The rules
are the stack's (stalk.embedded.control.check_rate), which the CLI checks too."""

from __future__ import annotations

from dataclasses import dataclass

from stalk.embedded.control import check_rate


@dataclass(frozen=True)
class RateLimit:
    task: str
    rate: str  # Celery rate text; "0" removes the limit


@dataclass(frozen=True)
class Autoscale:
    max: int
    min: int


def check_rate_limit(values: dict[str, str], known: tuple[str, ...] = ()) -> RateLimit:
    task = values.get("task", "")
    if not task:
        raise ValueError("task: give a task name, e.g. demo.add")
    if known and task not in known:
        raise ValueError(f"task: no worker registered {task!r}")
    return RateLimit(task, check_rate(values.get("rate", "")))


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
