"""Task records from embedded.events turned into display rows; filter text parsed into query kwargs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from stalk.embedded.events import ALL_STATES, FINISHED, ROUTE_SOURCE, TaskRecord
from stalk.panel.formatting import preview

TASK_STATES: tuple[str, ...] = tuple(ALL_STATES)  # incl. REJECTED and LOST, as the store names them
DONE_STATES = frozenset(FINISHED) | {"REJECTED"}  # no more progress will come
EMPTY_REPRS = ("", "()", "[]", "{}")
SORT_KEYS = ("received", "name", "state", "runtime", "worker", "queue")
FILTER_KEYS = ("state", "name", "queue", "worker")


def field(record: Any, *names: str, default: Any = None) -> Any:
    """The first of `names` the record has (records may be dicts or objects)."""
    for name in names:
        value = record.get(name) if isinstance(record, dict) else getattr(record, name, None)
        if value is not None:
            return value
    return default


def progress_of(record: Any, finished_too: bool = False) -> float | None:
    """0..1 while a task reports current/total (a finished task's last report only if asked)."""
    if not finished_too and str(field(record, "state", default="")) in DONE_STATES:
        return None
    value = field(record, "progress")
    if isinstance(value, int | float):
        return float(value) if value <= 1 else float(value) / 100
    meta = value if isinstance(value, dict) else field(record, "meta", "info", default={})
    if not isinstance(meta, dict):
        return None
    try:
        fraction = float(meta.get("current") or 0) / float(meta["total"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None  # a task's own meta: anything may be in it
    return max(0.0, min(1.0, fraction)) if fraction == fraction else None


def args_preview(record: Any, width: int = 30) -> str:
    """"(2, 3) {'x': 1}": the args and kwargs reprs, empty ones left out."""
    return args_text(field(record, "args"), field(record, "kwargs"), width)


def args_text(args: Any, kwargs: Any, width: int = 30) -> str:
    parts = [str(text) for text in (args, kwargs) if text is not None and str(text).strip() not in EMPTY_REPRS]
    return preview(" ".join(parts), width * 2) if parts else ""


class TaskRow(NamedTuple):
    """One table row. A tuple: made, compared and hashed in C (500 per key and per live refresh, and
    the table's line cache is keyed by them)."""

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
    queue_inferred: bool = False  # the queue is only where the app routes the task's name (queue_source "route")

    @classmethod
    def of(cls, record: Any, args_text: str | None = None) -> TaskRow:
        if type(record) is TaskRecord and args_text is None:
            return cls.of_record(record)
        return cls(
            task_id=str(field(record, "task_id", "uuid", "id", default="?")),
            state=str(field(record, "state", default="PENDING")),
            name=str(field(record, "name", default="?")),
            args=args_preview(record) if args_text is None else args_text,
            worker=str(field(record, "worker", "hostname", default="-")),
            queue=str(field(record, "queue", "routing_key", default="-")),
            received=field(record, "received", "sent", "updated"),
            runtime=field(record, "runtime"),
            retries=int(field(record, "retries", default=0) or 0),
            progress=progress_of(record),
            queue_inferred=field(record, "queue_source") == ROUTE_SOURCE and field(record, "queue") is not None,
        )

    @classmethod
    def of_record(cls, rec: TaskRecord) -> TaskRow:
        """`of` for the store's own records: attributes read directly (rows are made 500 at a time, on
        every key and live refresh; `field`'s lookups were half their cost)."""
        return cls(
            str(rec.task_id),
            "PENDING" if rec.state is None else str(rec.state),
            "?" if rec.name is None else str(rec.name),
            args_text(rec.args, rec.kwargs),
            "-" if rec.worker is None else str(rec.worker),
            str(rec.queue if rec.queue is not None else "-" if rec.routing_key is None else rec.routing_key),
            rec.received if rec.received is not None else rec.sent if rec.sent is not None else rec.updated,
            rec.runtime,
            int(rec.retries or 0),
            None if rec.progress is None else progress_of(rec),
            rec.queue_source == ROUTE_SOURCE and rec.queue is not None,
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
