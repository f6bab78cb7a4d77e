"""Readiness: a worker is pinged once it logs that it is ready; a child's earlier runs do not count."""

from __future__ import annotations

import sys

import pytest

from stalk.embedded import ProcState
from stalk.embedded.supervisor import ChildSpec
from stalk.embedded.supervisor.child import Child
from stalk.embedded.supervisor.logs import LogRing

from .conftest import wait_until

pytestmark = pytest.mark.procs


def test_said_looks_only_at_the_current_run():
    script = "import time; time.sleep(1); print('beat: Starting...', flush=True)"
    child = Child(ChildSpec(name="beat", role="beat", argv=[sys.executable, "-c", script], watchdog=False),
                  LogRing("beat", 100))
    for _run in range(2):
        child.spawn(lambda _child: None)
        assert not child.said("beat: Starting")  # the first run's line must not make the second ready
        wait_until(lambda: child.said("beat: Starting"))
        child.popen.wait(timeout=10)


def test_worker_that_logs_nothing_is_still_found_ready(running_stack):
    stack = running_stack(broker={"mode": "redis"}, app="tests.apps.quiet_app:app", beat=False)
    worker = next(p for p in stack.processes() if p.role == "worker")
    assert worker.state is ProcState.READY
    assert not any("ready." in line.text for line in stack.logs(worker.name))
    assert stack.app.send_task("quiet.add", (2, 3), queue="quiet").get(timeout=20) == 5
