"""Liveness after ready: a SIGSTOPped worker is shown unresponsive (in the stack and in `stalk status`),
is ready again when continued, and is killed and restarted when it stays silent (Stalk's defaults:
pinged every 5 s, restarted after 30 s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import psutil
import pytest

from stalk.embedded import ProcState

from .conftest import clean_env, stalk_cmd, wait_until

pytestmark = pytest.mark.procs

APP = "tests.apps.fault_app:app"
WORKER = "worker:live"


def status_state(data_dir) -> str:
    out = subprocess.run([*stalk_cmd("status", "--json", "--data-dir", str(data_dir))], capture_output=True,
                         text=True, timeout=60, env=clean_env(), check=True).stdout
    return next(p["state"] for p in json.loads(out)["processes"] if p["name"] == WORKER)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_stopped_worker_is_unresponsive_then_ready_again_or_restarted(running_stack):
    # a shorter silence before the kill than the default 30 s: the same path, 20 s less of the suite's time
    stack = running_stack(app=APP, beat=False, broker={"mode": "redis"},
                          supervisor={"reload": False, "liveness_interval": 2.0, "unresponsive_restart": 10.0},
                          workers=[{"name": "live", "queues": ["live"], "concurrency": 2}])
    pid = stack.process(WORKER).pid
    pool = [p.pid for p in psutil.Process(pid).children(recursive=True)]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: stack.process(WORKER).state is ProcState.UNRESPONSIVE, timeout=20)
        wait_until(lambda: status_state(stack.paths.data_dir) == "unresponsive", timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: stack.process(WORKER).state is ProcState.READY, timeout=20)
    assert (stack.process(WORKER).pid, stack.process(WORKER).restarts) == (pid, 0)
    os.kill(pid, signal.SIGSTOP)  # and left stopped: killed, restarted
    wait_until(lambda: stack.process(WORKER).restarts == 1, timeout=90)
    wait_until(lambda: stack.process(WORKER).state is ProcState.READY, timeout=60)
    assert stack.process(WORKER).pid != pid
    assert all(gone(p) for p in [pid, *pool])
    lines = [line.text for line in stack.logs(WORKER)]
    assert any("does not answer pings: unresponsive" in line for line in lines)
    assert any("answers pings again: ready" in line for line in lines)
    assert any("unresponsive for" in line and "killing it" in line for line in lines)
