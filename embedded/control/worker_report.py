"""One worker in full, from its own answers: pool, prefetch, broker, queues, the tasks it holds (running,
reserved, scheduled), what it has processed and its resource usage. Flower's worker page, as data.

The six inspect calls go out at once to that worker alone, so the report comes back as soon as it has
answered them all (or after one timeout if it is down)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stalk.embedded.broker.base import redact

KINDS = ("stats", "active", "reserved", "scheduled", "active_queues", "registered")
POOL_NAMES = {"thread": "threads"}  # pool module -> the name `celery worker -P` takes


@dataclass(frozen=True)
class HeldTask:
    """A task a worker holds: running (active), prefetched (reserved) or waiting for its eta (scheduled)."""

    task_id: str
    name: str
    args: str
    kwargs: str
    started: float | None = None  # epoch the task started (active only)
    eta: float | None = None  # epoch it is due (scheduled only)
    worker_pid: int | None = None  # the pool process running it (active only)


@dataclass(frozen=True)
class WorkerReport:
    hostname: str
    answered: bool  # False: the worker did not answer (down, or busy past the timeout)
    pid: int | None = None
    uptime: float | None = None  # seconds
    pool: str | None = None  # prefork, threads, solo, ...
    processes: tuple[int, ...] = ()  # pool process pids
    concurrency: int | None = None  # max concurrency
    prefetch: int | None = None  # current prefetch count
    broker: str | None = None  # transport://host:port/vhost, no password
    queues: tuple[str, ...] = ()
    registered: tuple[str, ...] = ()
    active: tuple[HeldTask, ...] = ()
    reserved: tuple[HeldTask, ...] = ()
    scheduled: tuple[HeldTask, ...] = ()
    processed: dict[str, int] = field(default_factory=dict)  # task name -> runs since the worker started
    rusage: dict[str, float] = field(default_factory=dict)  # utime, stime (s), maxrss (KiB)
    problems: tuple[str, ...] = ()


def worker_report(hostname: str, ask: Callable[[str], dict[str, Any]]) -> WorkerReport:
    """`ask(kind)` broadcasts one inspect kind to `hostname` alone ({hostname: reply} or {})."""
    replies: dict[str, Any] = {}
    problems = []
    with ThreadPoolExecutor(len(KINDS), thread_name_prefix="stalk-worker-report") as pool:
        futures = {kind: pool.submit(ask, kind) for kind in KINDS}
        for kind, future in futures.items():
            try:
                replies[kind] = (future.result() or {}).get(hostname)
            except Exception as exc:  # one failed call is one line, the rest still shows
                problems.append(f"{kind}: {exc}")
    if all(reply is None for reply in replies.values()):
        return WorkerReport(hostname, answered=False, problems=tuple(problems))
    return _report(hostname, replies, tuple(problems))


def _report(hostname: str, replies: dict[str, Any], problems: tuple[str, ...]) -> WorkerReport:
    stats = _dict(replies.get("stats"))
    pool = _dict(stats.get("pool"))
    processes = tuple(p for p in _list(pool.get("processes")) if isinstance(p, int))
    return WorkerReport(
        hostname=hostname, answered=True, pid=_int(stats.get("pid")), uptime=_float(stats.get("uptime")),
        pool=pool_name(pool.get("implementation")), processes=processes,
        # grow/shrink/autoscale change the pool's processes, not the max-concurrency it reports
        concurrency=len(processes) or _int(pool.get("max-concurrency")), prefetch=_int(stats.get("prefetch_count")),
        broker=broker_text(_dict(stats.get("broker"))),
        queues=queue_names(replies.get("active_queues")),
        registered=tuple(sorted(str(n).split(" ", 1)[0] for n in _list(replies.get("registered")))),
        active=tuple(held(t) for t in _list(replies.get("active")) if isinstance(t, dict)),
        reserved=tuple(held(t) for t in _list(replies.get("reserved")) if isinstance(t, dict)),
        scheduled=tuple(scheduled(t) for t in _list(replies.get("scheduled")) if isinstance(t, dict)),
        processed={str(k): int(v) for k, v in _dict(stats.get("total")).items() if isinstance(v, int)},
        rusage={k: float(v) for k, v in _dict(stats.get("rusage")).items()
                if k in ("utime", "stime", "maxrss") and isinstance(v, int | float)},
        problems=problems,
    )


def held(request: dict[str, Any]) -> HeldTask:
    """One entry of an active or reserved reply (Celery sends args and kwargs as values, not reprs)."""
    return HeldTask(task_id=str(request.get("id") or "?"), name=str(request.get("name") or "?"),
                    args=_repr(request.get("args"), "[]"), kwargs=_repr(request.get("kwargs"), "{}"),
                    started=_float(request.get("time_start")), worker_pid=_int(request.get("worker_pid")))


def scheduled(entry: dict[str, Any]) -> HeldTask:
    """One entry of a scheduled reply: {"eta": iso, "priority": n, "request": {...}}."""
    task = held(_dict(entry.get("request")))
    eta = entry.get("eta")
    try:
        when = datetime.fromisoformat(eta).timestamp() if isinstance(eta, str) else None
    except ValueError:
        when = None
    return HeldTask(task.task_id, task.name, task.args, task.kwargs, eta=when)


def queue_names(reply: Any) -> tuple[str, ...]:
    """The queue names of one worker's `inspect active_queues` reply."""
    return tuple(q["name"] for q in _list(reply) if isinstance(q, dict) and q.get("name"))


def pool_name(implementation: Any) -> str | None:
    """`celery.concurrency.prefork:TaskPool` -> prefork."""
    if not isinstance(implementation, str) or not implementation:
        return None
    module = implementation.split(":", 1)[0].rsplit(".", 1)[-1]
    return POOL_NAMES.get(module, module)


def broker_text(broker: dict[str, Any]) -> str | None:
    """The worker's broker connection as transport://host:port/vhost (stats never include the password)."""
    host = broker.get("hostname")
    if not host:
        return None
    if "://" in str(host):  # a socket transport's "hostname" is its whole URL, password included
        return redact(str(host))
    port = f":{broker['port']}" if broker.get("port") else ""
    vhost = broker.get("virtual_host")
    vhost = "" if vhost in (None, "") else f"/{str(vhost).lstrip('/')}"
    return f"{broker.get('transport') or '?'}://{host}{port}{vhost}"


def _repr(value: Any, empty: str) -> str:
    if value is None:
        return empty
    return value if isinstance(value, str) else repr(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
