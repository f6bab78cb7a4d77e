"""What the store holds: one slotted record per task and per worker, and the batches subscribers get."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

ROUTE_SOURCE = "route"  # queue_source when the queue is only inferred from the app's routes


@dataclass(slots=True, eq=False)
class TaskRecord:
    """One task as the events describe it. Texts (args, result...) are the events' display reprs."""

    task_id: str
    name: str | None = None
    state: str = "PENDING"
    args: str | None = None
    kwargs: str | None = None
    queue: str | None = None
    routing_key: str | None = None
    queue_source: str | None = None  # None: the queue as an event, the worker or the backend said; "route": inferred
    priority: int | None = None
    worker: str | None = None
    retries: int = 0
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    runtime: float | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    progress: dict | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    replaced: str | None = None  # the task this id was sent as, before Task.replace gave it to another
    eta: str | None = None
    expires: str | None = None
    updated: float | None = None  # timestamp of the last event applied
    retried: float | None = None  # timestamp of the last retry
    attempts: list | None = None  # retries seen: (timestamp, worker, exception), None if never retried
    arrival: int = 0  # the store's count of tasks when this one arrived: ties in a sort go by it

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TASK_FIELDS}


ARRIVAL = attrgetter("arrival")  # sort key: arrival order
TASK_FIELDS: tuple[str, ...] = tuple(f for f in TaskRecord.__slots__ if f not in ("attempts", "arrival"))
REQUEUED_PREFIX = "requeued:"  # an attempt's text when Stalk put the task back (the fold's _requeued)


def attempt_kind(text: object) -> str:
    """"requeued" (Stalk put the task back: its worker died) or "retry" (the task retried itself)."""
    return "requeued" if isinstance(text, str) and text.startswith(REQUEUED_PREFIX) else "retry"


def attempts_listed(rec: TaskRecord) -> list[dict[str, Any]]:
    """The record's attempts as `stalk tasks --json` lists them, oldest first ([] when none)."""
    return [{"kind": attempt_kind(text), "at": at, "worker": worker, "reason": text}
            for at, worker, text in rec.attempts or ()]


@dataclass(slots=True, eq=False)
class WorkerRecord:
    hostname: str
    online: bool = False
    pool: str | None = None
    concurrency: int | None = None
    processed: int = 0
    active: int = 0
    load: tuple = ()
    last_heartbeat: float | None = None
    freq: float = 2.0
    sw_ver: str | None = None
    pid: int | None = None


@dataclass(slots=True, frozen=True)
class TaskEvent:
    """One step of a task's timeline (`events_of`)."""

    type: str
    timestamp: float | None
    hostname: str | None = None
    fields: dict = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Changes:
    """Ids of the tasks and hostnames of the workers that changed since the last batch."""

    tasks: frozenset[str]
    workers: frozenset[str]
