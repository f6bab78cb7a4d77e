"""Task records from embedded.events turned into display rows; filter text parsed into query kwargs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASK_STATES = ("PENDING", "RECEIVED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
SORT_KEYS = ("received", "name", "state", "runtime", "worker", "queue")
FILTER_KEYS = ("state", "name", "queue", "worker")


def field(record: Any, *names: str, default: Any = None) -> Any:
    """The first of `names` the record has (records may be dicts or objects)."""
    for name in names:
        value = record.get(name) if isinstance(record, dict) else getattr(record, name, None)
        if value is not None:
            return value
    return default


def progress_of(record: Any) -> float | None:
    """0..1 for PROGRESS tasks that report current/total, else None."""
    value = field(record, "progress")
    if isinstance(value, int | float):
        return float(value) if value <= 1 else float(value) / 100
    meta = value if isinstance(value, dict) else field(record, "meta", "info", default={})
    if isinstance(meta, dict) and meta.get("total"):
        return max(0.0, min(1.0, float(meta.get("current", 0)) / float(meta["total"])))
    return None


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    state: str
    name: str
    args: str
    worker: str
    queue: str
    received: float | None
    runtime: float | None
    retries: int
    progress: float | None

    @classmethod
    def of(cls, record: Any, args_preview: str) -> TaskRow:
        return cls(
            task_id=str(field(record, "task_id", "uuid", "id", default="?")),
            state=str(field(record, "state", default="PENDING")),
            name=str(field(record, "name", default="?")),
            args=args_preview,
            worker=str(field(record, "worker", "hostname", default="-")),
            queue=str(field(record, "queue", "routing_key", default="-")),
            received=field(record, "received", "received_at", "timestamp"),
            runtime=field(record, "runtime"),
            retries=int(field(record, "retries", default=0) or 0),
            progress=progress_of(record),
        )


@dataclass(frozen=True)
class TaskFilter:
    """What the Tasks screen asks the store for."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    worker: str | None = None
    search: str | None = None
    sort_key: str = "received"
    reverse: bool = True

    def query_kwargs(self, limit: int) -> dict[str, Any]:
        return {"state": self.state, "name": self.name, "queue": self.queue, "worker": self.worker,
                "search": self.search, "sort_key": self.sort_key, "reverse": self.reverse, "limit": limit}

    def describe(self) -> str:
        parts = [f"{k}:{getattr(self, k)}" for k in FILTER_KEYS if getattr(self, k)]
        if self.search:
            parts.append(f"“{self.search}”")
        return " ".join(parts)


def parse_filter(text: str, base: TaskFilter) -> TaskFilter:
    """`state:failure name:demo.add free words` -> a TaskFilter (unknown keys are searched as text)."""
    values: dict[str, str | None] = {k: None for k in FILTER_KEYS}
    words = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key.lower() in FILTER_KEYS and value:
            values[key.lower()] = value.upper() if key.lower() == "state" else value
        else:
            words.append(token)
    return TaskFilter(search=" ".join(words) or None, sort_key=base.sort_key, reverse=base.reverse,
                      **values)
