"""Fetching what the Dashboard draws (worker thread); drawing lives in the widgets.

Each part is fetched on its own so one failing API shows as one problem, not a blank screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

THROUGHPUT_SECONDS = 60


@dataclass
class DashboardData:
    throughput: list[float] | None = None  # tasks finished per second, oldest first
    failures: list[float] | None = None  # failures per second, oldest first
    counts: dict[str, int] | None = None  # tasks by state
    depths: dict[str, int] | None = None  # queue -> waiting messages
    quotas: list[Any] | None = None  # QuotaStatus-like objects
    recent: list[Any] | None = None  # recent failed tasks
    problems: list[str] = field(default_factory=list)


def _part(data: DashboardData, name: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # a broken part becomes a visible problem line
        data.problems.append(f"{name}: {exc}")
        return None


def split_throughput(value: Any) -> tuple[list[float] | None, list[float] | None]:
    """Accept either a list of numbers or a list of (succeeded, failed)-like buckets."""
    if value is None:
        return None, None
    buckets = list(value)
    if buckets and isinstance(buckets[0], int | float):
        return [float(b) for b in buckets], None
    done, failed = [], []
    for bucket in buckets:
        if isinstance(bucket, dict):
            counts: dict[str, Any] = bucket  # typed keys: a dict[Any, Any]'s get(k, <Any>) reads as Any | None
            done.append(float(counts.get("succeeded", counts.get("done", 0))))
            failed.append(float(counts.get("failed", 0)))
        else:
            done.append(float(getattr(bucket, "succeeded", getattr(bucket, "done", 0))))
            failed.append(float(getattr(bucket, "failed", 0)))
    return done, failed


def fetch_dashboard(stack: Any, ledger: Any = None) -> DashboardData:
    data = DashboardData()
    events = getattr(stack, "events", None)
    control = getattr(stack, "control", None)
    if events is not None:
        data.throughput, data.failures = split_throughput(
            _part(data, "throughput", lambda: events.throughput(THROUGHPUT_SECONDS)))
        data.counts = _part(data, "counts", events.counts_by_state)
        data.recent = _part(data, "recent failures", lambda: events.recent_failures(8))
    if control is not None and hasattr(control, "queue_depths"):
        data.depths = _part(data, "queue depths", control.queue_depths)
    if ledger is not None:
        data.quotas = _part(data, "quota", lambda: [ledger.status(q.name if hasattr(q, "name") else q)
                                                    for q in ledger.quotas()])
    return data
