"""What the Workers screen shows, fetched on a worker thread: workers (event store + supervisor), queues.

A worker the supervisor runs but the event store has not heard from still gets a row (no heartbeat
yet), so the screen is useful before events arrive. Each part is fetched on its own: one failing API
becomes one problem line, not a blank screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stalk.embedded.control import pool_name, queue_names
from stalk.panel.task_rows import field as get

INSPECT_TIMEOUT = 0.5
INSPECTED = {"reserved": "reserved", "stats": "pool sizes", "active_queues": "worker queues"}  # kind: part name


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
    consumers: tuple[str, ...]  # supervised processes (or, for workers Stalk does not run, hostnames) consuming it


@dataclass
class WorkersData:
    workers: list[WorkerRow] = field(default_factory=list)
    queues: list[QueueRow] = field(default_factory=list)
    has_events: bool = False
    has_control: bool = False
    task_names: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    loaded: bool = False  # False until the first fetch has come back


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


def pool_names(stats: dict[str, Any] | None) -> dict[str, str]:
    """Pool name per worker from `inspect stats` (`celery.concurrency.prefork:TaskPool` -> prefork): worker
    events do not carry it, so a worker Stalk does not run is known only this way."""
    names = {}
    for hostname, reply in (stats or {}).items():
        pool = reply.get("pool") if isinstance(reply, dict) else None
        name = pool_name(pool.get("implementation")) if isinstance(pool, dict) else None
        if name:
            names[hostname] = name
    return names


def consumed_queues(replies: dict[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Queue names per worker from `inspect active_queues`."""
    return {hostname: queue_names(reply) for hostname, reply in (replies or {}).items() if isinstance(reply, list)}


def worker_rows(records: list[Any], processes: list[Any], reserved: dict[str, Any] | None,
                sizes: dict[str, int] | None = None, pools: dict[str, str] | None = None,
                queues: dict[str, tuple[str, ...]] | None = None) -> list[WorkerRow]:
    """Event-store workers merged with supervised worker processes, keyed by Celery hostname; what the
    workers answered (pool, size, queues) fills in what events do not say."""
    sizes, pools, queues = sizes or {}, pools or {}, queues or {}
    procs = {p.hostname: p for p in processes if getattr(p, "role", "") == "worker" and p.hostname}
    rows: dict[str, WorkerRow] = {}
    for r in records:
        hostname = str(get(r, "hostname", default="?"))
        proc = procs.get(hostname)
        load = get(r, "load", "loadavg", default=()) or ()
        rows[hostname] = WorkerRow(
            hostname=hostname, online=bool(get(r, "online", default=False)),
            process=proc.name if proc else None, pool=str(get(r, "pool") or pools.get(hostname, "-")),
            concurrency=sizes.get(hostname, _count(get(r, "concurrency"))), active=_count(get(r, "active")),
            reserved=_reserved(reserved, hostname),
            processed=_count(get(r, "processed")), load=tuple(float(x) for x in load),
            heartbeat=get(r, "last_heartbeat", "heartbeat"),
            queues=tuple(proc.queues) if proc else queues.get(hostname, ()))
    for hostname, proc in procs.items():
        if hostname not in rows:
            rows[hostname] = WorkerRow(hostname, False, proc.name, "-", None, None, _reserved(reserved, hostname),
                                       None, (), None, tuple(proc.queues))
    for hostname in (set(pools) | set(queues)) - set(rows):  # answered, but no event from it yet
        rows[hostname] = WorkerRow(hostname, True, None, pools.get(hostname, "-"), sizes.get(hostname), None,
                                   _reserved(reserved, hostname), None, (), None, queues.get(hostname, ()))
    order = {name: i for i, name in enumerate(p.name for p in procs.values())}
    return sorted(rows.values(), key=lambda w: (order.get(w.process or "", len(order)), w.hostname))


def queue_rows(depths: dict[str, int] | None, processes: list[Any], workers: Sequence[WorkerRow] = ()) -> list[QueueRow]:
    """Queues with their depth and consumers: supervised processes by name, other workers by hostname."""
    consumers: dict[str, list[str]] = {}
    for p in processes:
        if getattr(p, "role", "") == "worker":
            for q in p.queues:
                consumers.setdefault(q, []).append(p.name)
    for w in workers:
        if w.process is None:
            for q in w.queues:
                consumers.setdefault(q, []).append(w.hostname)
    names = sorted(set(consumers) | set(depths or {}))
    return [QueueRow(q, (depths or {}).get(q) if depths is not None else None, tuple(consumers.get(q, ())))
            for q in names]


def fetch_workers(stack: Any, processes: list[Any]) -> WorkersData:
    data = WorkersData()
    events = getattr(stack, "events", None)
    control = getattr(stack, "control", None)
    data.has_events, data.has_control = events is not None, control is not None
    records = (_part(data, "workers", events.workers) or []) if events is not None else []
    answers: dict[str, Any] = {}
    depths = None
    if control is not None:
        answers = inspect_all(data, control)
        depths = _part(data, "queue depths", control.queue_depths)
        names = _part(data, "registered tasks", control.registered_tasks)
        data.task_names = tuple(sorted(names or ()))
    stats = answers.get("stats")
    data.workers = worker_rows(list(records), processes, answers.get("reserved"), pool_sizes(stats),
                               pool_names(stats), consumed_queues(answers.get("active_queues")))
    data.queues = queue_rows(depths, processes, data.workers)
    data.loaded = True
    return data


def inspect_all(data: WorkersData, control: Any) -> dict[str, Any]:
    """The INSPECTED broadcasts at once: each waits its whole timeout when not every worker answers. Their
    problems are told in INSPECTED's order, not in the order they failed in (which varies)."""
    parts = {kind: WorkersData() for kind in INSPECTED}
    with ThreadPoolExecutor(len(INSPECTED), thread_name_prefix="stalk-inspect") as pool:
        futures = {kind: pool.submit(_part, parts[kind], name,
                                     lambda k=kind: control.inspect(k, timeout=INSPECT_TIMEOUT))
                   for kind, name in INSPECTED.items()}
        answers = {kind: future.result() for kind, future in futures.items()}
    for part in parts.values():
        data.problems += part.problems
    return answers
