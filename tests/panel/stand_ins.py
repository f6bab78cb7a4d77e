"""`StackView` puts chosen events/control/paths on a real (eager) stack; `Control` is a stand-in.

The Control stand-in answers what a real Control can only answer with live workers on a real broker
(queue depths, reserved tasks, replies to pool/autoscale/rate-limit/shutdown), with fixed values and a
record of every call, so Workers snapshots and key flows are deterministic. The same flows run against
a real Control and real workers in test_workers_screen's `procs` test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class StackView:
    """A real Stack with chosen `events` / `control` layers (everything else is the real stack)."""

    def __init__(self, stack: Any, events: Any = None, control: Any = None, paths: Any = None) -> None:
        self._stack = stack
        self.events = events
        self.control = control
        self.paths = paths or stack.paths

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stack, name)


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

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise RuntimeError(self.fail[name])

    def inspect(self, kind: str, destination: Any = None, timeout: float = 1.0) -> dict[str, Any]:
        if "inspect" in self.fail:
            raise RuntimeError(self.fail["inspect"])
        if kind == "stats":
            return {host: {"pool": {"max-concurrency": 4, "processes": list(range(n))}}
                    for host, n in self.pool.items()}
        return self.reserved if kind == "reserved" else {}

    def registered_tasks(self) -> set[str]:
        return {"demo.add", "demo.slow", "demo.flaky"}

    def queue_depths(self) -> dict[str, int]:
        if "queue_depths" in self.fail:
            raise RuntimeError(self.fail["queue_depths"])
        return dict(self.depths)

    def pool_grow(self, hostname: str, n: int = 1) -> None:
        self._call("pool_grow", hostname, n)
        if hostname in self.pool:
            self.pool[hostname] += n

    def pool_shrink(self, hostname: str, n: int = 1) -> None:
        self._call("pool_shrink", hostname, n)

    def autoscale(self, hostname: str, max: int, min: int) -> None:  # noqa: A002 - the contract's names
        self._call("autoscale", hostname, max, min)

    def rate_limit(self, task_name: str, rate: str, destination: Any = None) -> None:
        self._call("rate_limit", task_name, rate, destination)

    def shutdown(self, hostname: str) -> None:
        self._call("shutdown", hostname)

    def purge(self, queue: str, by: str | None = None) -> int:
        self._call("purge", queue)
        return self.depths.pop(queue, 0)

    def beat_entries(self) -> list[BeatEntry]:
        if "beat_entries" in self.fail:
            raise RuntimeError(self.fail["beat_entries"])
        return list(self.entries)

    def run_beat_entry(self, name: str) -> Result:
        self._call("run_beat_entry", name)
        return Result(f"beat-{name}-0001")
