"""Patches the prefork pool's warm shutdown inside `stalk worker`: its two fixed sleeps end as soon as
what they wait for is done.

Overrides, in billiard.pool (billiard/pool.py), the module's `time` (a stand-in whose `sleep` is
billiard's own except in a pool process ending on the shutdown sentinel) and `Worker._do_exit` (marks
that case: the SystemExit its job `receive` raises on the sentinel `Pool.close` sends); and, in
celery.concurrency.prefork, the module's `time` (a `sleep` that ends once the pool's `join` returned,
which `Pool.join`, wrapped, says). Relies on `Worker._do_exit` putting DEATH on the outqueue, then
`time.sleep(1)`, then `os._exit`, on its `receive` raising SystemExit on the sentinel, and on `TaskPool.on_stop` firing the hub's timers in a thread that
sleeps 0.5 s a turn until the pool's join returns. Installed by stalk.embedded.children.run_worker.

Written against billiard 4.3 and Celery 5.7.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks both sleeps are still there and shaped as assumed.

What it buys: a warm stop of an idle prefork worker took 1.5 s longer than its work: each pool process
waits 1 s after saying it is going (so that the parent reads DEATH before the process is gone: during a
shutdown the parent is only joining it), then the timer thread's last 0.5 s sleep. `Stack.stop()` of a
redis stack, two idle workers and beat: 2.9 -> ~1.4 s (its workers stop in parallel). A restart of a
worker after a code change is as much faster. A pool process recycled while the worker runs
(max_tasks_per_child) or ended by a job's own SystemExit keeps billiard's 1 s.

If removed: every warm stop and restart of a prefork worker takes those 1.5 s again.
"""

from __future__ import annotations

import sys
import threading
import time as _time
import types
from collections.abc import Callable
from typing import Any

QUICK_EXIT = 0.02  # s: a pool process ending on the shutdown sentinel, instead of billiard's 1 s

_joined = threading.Event()  # the pool's join returned: the timer thread may end at once
_local = threading.local()  # in a pool process: ending on the shutdown sentinel


class _BilliardTime(types.ModuleType):
    """billiard.pool's `time`: the real module, but the 1 s sleep of a pool process ending on the shutdown
    sentinel is QUICK_EXIT."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    def sleep(self, seconds: float) -> None:
        if seconds == 1 and getattr(_local, "sentinel_exit", False):
            seconds = QUICK_EXIT
        _time.sleep(seconds)


class _PreforkTime(types.ModuleType):
    """celery.concurrency.prefork's `time`: its sleeps end once the pool's join returned."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    def sleep(self, seconds: float) -> None:
        _joined.wait(seconds)


def _ended_waiting_for_a_job(exc: BaseException | None) -> bool:
    """`exc` is the SystemExit billiard's `receive` raises when the pool closes (the sentinel, the shutdown
    event) or its parent is gone (EOF), not a job's own SystemExit."""
    import billiard.pool as pool

    if not isinstance(exc, SystemExit) or exc.__traceback__ is None:
        return False
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code.co_name == "receive" and code.co_filename == pool.__file__


def _marking_exit(original: Callable[..., Any]) -> Callable[..., Any]:
    def _do_exit(self: Any, pid: int, exitcode: int | None, exc: BaseException | None = None) -> Any:
        _local.sentinel_exit = exc is None and _ended_waiting_for_a_job(sys.exc_info()[1])
        return original(self, pid, exitcode, exc)

    _do_exit.__wrapped__ = original  # type: ignore[attr-defined]
    return _do_exit


def _telling_join(original: Callable[..., Any]) -> Callable[..., Any]:
    def join(self: Any) -> Any:
        try:
            return original(self)
        finally:
            _joined.set()

    join.__wrapped__ = original  # type: ignore[attr-defined]
    return join


def install() -> None:
    """Patch billiard's pool and Celery's prefork TaskPool in this process (a `stalk worker`). Once."""
    import billiard.pool as pool
    from celery.concurrency import prefork

    if isinstance(pool.time, _BilliardTime):
        return
    pool.time = _BilliardTime("time")
    prefork.time = _PreforkTime("time")
    pool.Worker._do_exit = _marking_exit(pool.Worker._do_exit)
    pool.Pool.join = _telling_join(pool.Pool.join)
