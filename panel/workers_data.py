"""What the Workers screen shows, fetched on a worker thread: workers (event store + supervisor), queues.

A worker the supervisor runs but the event store has not heard from still gets a row (no heartbeat
yet), so the screen is useful before events arrive. Each part is fetched on its own: one failing API
becomes one problem line, not a blank screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .task_rows import field as get

INSPECT_TIMEOUT = 0.5


@dataclass(frozen=True)
class WorkerRow:
    hostname: str
    online: bool
    process: str | None  # the supervised process running it (None: a worker Stalk does not run)
    pool: str
    concurrency: int | None
    active: int | None
    reserved: int | None
    processed: int | None
    load: tuple[float, ...]
    heartbeat: float | None  # epoch of the last heartbeat
    queues: tuple[str, ...]


@dataclass(frozen=True)
class QueueRow:
    name: str
    waiting: int | None
    consumers: tuple[str, ...]  # supervised processes consuming it


@dataclass
class WorkersData:
    workers: list[WorkerRow] = field(default_factory=list)
    queues: list[QueueRow] = field(default_factory=list)
    has_events: bool = False
    has_control: bool = False
    task_names: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)


def _part(data: WorkersData, name: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # one broken part is one visible problem
        data.problems.append(f"{name}: {exc}")
        return None


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    try:
        return len(value)
    except TypeError:
        return None


def _reserved(replies: dict[str, Any] | None, hostname: str) -> int | None:
    """Reserved tasks of one worker from an inspect reply (None: no reply from it)."""
    if replies is None or hostname not in replies:
        return None
    return _count(replies[hostname])


def pool_sizes(stats: dict[str, Any] | None) -> dict[str, int]:
    """Live pool size per worker from `inspect stats` (events only know the size a worker started with)."""
    sizes = {}
    for hostname, reply in (stats or {}).items():
        pool = reply.get("pool") if isinstance(reply, dict) else None
        if isinstance(pool, dict):
            size = len(pool["processes"]) if isinstance(pool.get("processes"), list) else pool.get("max-concurrency")
            if isinstance(size, int):
                sizes[hostname] = size
    return sizes


def worker_rows(records: list[Any], processes: list[Any], reserved: dict[str, Any] | None,
                sizes: dict[str, int] | None = None) -> list[WorkerRow]:
    """Event-store workers merged with supervised worker processes, keyed by Celery hostname."""
    sizes = sizes or {}
    procs = {p.hostname: p for p in processes if getattr(p, "role", "") == "worker" and p.hostname}
    rows: dict[str, WorkerRow] = {}
    for r in records:
        hostname = str(get(r, "hostname", default="?"))
        proc = procs.get(hostname)
        load = get(r, "load", "loadavg", default=()) or ()
        rows[hostname] = WorkerRow(
            hostname=hostname, online=bool(get(r, "online", default=False)),
            process=proc.name if proc else None, pool=str(get(r, "pool", default="-")),
            concurrency=sizes.get(hostname, _count(get(r, "concurrency"))), active=_count(get(r, "active")),
            reserved=_reserved(reserved, hostname),
            processed=_count(get(r, "processed")), load=tuple(float(x) for x in load),
            heartbeat=get(r, "last_heartbeat", "heartbeat"), queues=tuple(proc.queues) if proc else ())
    for hostname, proc in procs.items():
        if hostname not in rows:
            rows[hostname] = WorkerRow(hostname, False, proc.name, "-", None, None, _reserved(reserved, hostname),
                                       None, (), None, tuple(proc.queues))
    order = {name: i for i, name in enumerate(p.name for p in procs.values())}
    return sorted(rows.values(), key=lambda w: (order.get(w.process or "", len(order)), w.hostname))


def queue_rows(depths: dict[str, int] | None, processes: list[Any]) -> list[QueueRow]:
    consumers: dict[str, list[str]] = {}
    for p in processes:
        if getattr(p, "role", "") == "worker":
            for q in p.queues:
                consumers.setdefault(q, []).append(p.name)
    names = sorted(set(consumers) | set(depths or {}))
    return [QueueRow(q, (depths or {}).get(q) if depths is not None else None, tuple(consumers.get(q, ())))
            for q in names]


def fetch_workers(stack: Any, processes: list[Any]) -> WorkersData:
    data = WorkersData()
    events = getattr(stack, "events", None)
    control = getattr(stack, "control", None)
    data.has_events, data.has_control = events is not None, control is not None
    records = (_part(data, "workers", events.workers) or []) if events is not None else []
    reserved = depths = stats = None
    if control is not None:
        reserved = _part(data, "reserved", lambda: control.inspect("reserved", timeout=INSPECT_TIMEOUT))
        stats = _part(data, "pool sizes", lambda: control.inspect("stats", timeout=INSPECT_TIMEOUT))
        depths = _part(data, "queue depths", control.queue_depths)
        names = _part(data, "registered tasks", control.registered_tasks)
        data.task_names = tuple(sorted(names or ()))
    data.workers = worker_rows(list(records), processes, reserved, pool_sizes(stats))
    data.queues = queue_rows(depths, processes)
    return data
