"""`Control`: a stand-in for the Control of a real (eager) stack, served by its API (harness.serving).

It has the real Control's methods the API's routes call, with its return types and errors (ControlError),
and answers what a real Control can only answer with live workers on a real broker (queue depths,
reserved tasks, replies to pool/autoscale/rate-limit/shutdown) with fixed values and a record of every call, so Workers snapshots and key flows are deterministic. The same flows run against
a real Control and real workers in test_workers_screen's `procs` test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BeatEntry:
    name: str
    task: str
    schedule: str
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    last_run: Any = None
    next_run: Any = None
    total_run_count: int = 0


class Result:
    def __init__(self, task_id: str) -> None:
        self.id = task_id


class Control:
    """Answers fixed values; `calls` records (method, args) in order; `fail` makes a method raise."""

    def __init__(self, depths: dict[str, int] | None = None, reserved: dict[str, list] | None = None,
                 entries: list[BeatEntry] | None = None, fail: dict[str, str] | None = None) -> None:
        self.depths = depths or {}
        self.pool: dict[str, int] = {}  # hostname -> live pool size (`inspect stats`)
        self.reserved = reserved or {}
        self.entries = entries or []
        self.fail = fail or {}
        self.calls: list[tuple[str, tuple]] = []
        self.reports: dict[str, Any] = {}  # hostname -> embedded.control.WorkerReport

    def worker_report(self, hostname: str, timeout: float = 1.0) -> Any:
        from stalk.embedded.control import WorkerReport

        self._call("worker_report", hostname)
        return self.reports.get(hostname) or WorkerReport(hostname, answered=False)

    def _call(self, name: str, *args: Any) -> list:
        self.calls.append((name, args))
        self._fails(name)
        return []  # the workers' replies

    def _fails(self, name: str) -> None:
        from stalk.embedded.control import ControlError

        if name in self.fail:
            raise ControlError(self.fail[name])

    def inspect(self, kind: str, destination: Any = None, timeout: float = 1.0) -> dict[str, Any]:
        self._fails("inspect")
        if kind == "stats":
            return {host: {"pool": {"max-concurrency": 4, "processes": list(range(n))}}
                    for host, n in self.pool.items()}
        return self.reserved if kind == "reserved" else {}

    def registered_tasks(self, refresh: bool = False) -> set[str]:
        return {"demo.add", "demo.slow", "demo.flaky"}

    def require_task(self, name: str) -> str:
        return name

    def require_worker(self, hostname: str, timeout: float = 1.0) -> str:
        return hostname

    def ensure_broker(self) -> None:
        self._fails("ensure_broker")

    def known_queues(self) -> list[str]:
        return list(self.depths)

    def queue_depths(self) -> dict[str, int]:
        self._fails("queue_depths")
        return dict(self.depths)

    def pool_grow(self, hostname: str, n: int = 1) -> list:
        replies = self._call("pool_grow", hostname, n)
        if hostname in self.pool:
            self.pool[hostname] += n
        return replies

    def pool_shrink(self, hostname: str, n: int = 1) -> list:
        return self._call("pool_shrink", hostname, n)

    def autoscale(self, hostname: str, max: int, min: int) -> list:  # noqa: A002 - the contract's names
        return self._call("autoscale", hostname, max, min)

    def rate_limit(self, task_name: str, rate: str, destination: Any = None) -> list:
        return self._call("rate_limit", task_name, rate, destination)

    def shutdown(self, hostname: str) -> list:
        return self._call("shutdown", hostname)

    def purge(self, queue: str, by: str | None = None) -> int:
        self._call("purge", queue)
        return self.depths.pop(queue, 0)

    def beat_entries(self) -> list[BeatEntry]:
        self._fails("beat_entries")
        return list(self.entries)

    def run_beat_entry(self, name: str) -> Result:
        self._call("run_beat_entry", name)
        return Result(f"beat-{name}-0001")
