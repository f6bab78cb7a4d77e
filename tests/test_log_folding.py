"""A broker kill under a few running tasks: the worker's log says each thing once, with its count (the
result backend's retries, kombu's restore), with no traceback block, and the noise is gone (Celery's
CPendingDeprecationWarning, redis-server's vm.overcommit warning)."""

from __future__ import annotations

import os
import signal

import pytest

from stalk.embedded import ProcState

from .conftest import wait_until

pytestmark = pytest.mark.procs

WORKER = "worker:noise"
FOLDED = "Result backend: _store_result failed"


def texts(stack, name: str) -> list[str]:
    return [line.text for line in stack.logs(name)]


def test_a_broker_kill_writes_one_line_per_kind_with_counts(running_stack):
    # backoff_initial: the broker stays down 3 s, so the running tasks finish while it is away
    stack = running_stack(app="tests.apps.noise_app:app", beat=False, broker={"mode": "redis"},
                          supervisor={"reload": False, "backoff_initial": 3.0},
                          workers=[{"name": "noise", "queues": ["noise"], "concurrency": 4}])
    results = [stack.app.send_task("noise.nap", (1.5,), queue="noise") for _ in range(8)]
    wait_until(lambda: sum(stack.events.get(r.id) is not None and stack.events.get(r.id).state == "STARTED"
                           for r in results) >= 4, timeout=30)
    os.kill(stack.process("broker").pid, signal.SIGKILL)
    wait_until(lambda: stack.process("broker").restarts == 1 and stack.process("broker").state is ProcState.RUNNING,
               timeout=30)
    folded = wait_until(lambda: [t for t in texts(stack, WORKER) if FOLDED in t], timeout=60)
    lines = texts(stack, WORKER)
    assert all(" time(s) in " in t for t in folded), folded
    assert len(folded) <= 4, folded  # one per pool process and burst
    assert not [t for t in lines if t.startswith("Traceback") or "Failed operation" in t], lines
    assert not [t for t in lines if "PendingDeprecationWarning" in t or "worker_cancel_long" in t], lines
    assert not [t for t in lines if "Skipping prefetch count reduction" in t], lines
    restores = [t for t in lines if "restore" in t.lower()]
    assert not [t for t in restores if "Restoring " in t], restores
    assert [t for t in restores if "Could not restore" in t or "Restored" in t], lines
    assert not [t for t in texts(stack, "broker") if "overcommit" in t]
