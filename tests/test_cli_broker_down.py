"""A shell command with the broker away says so in one line, at once: it does not inherit the retries the
workers and the stack keep (the result backend's 20, stalk_settings) nor wait forever on a stopped broker.

- Stalk's own redis-server SIGSTOPped (a hung broker: its socket accepts, nothing answers): `stalk submit`
  used to wait for a reply with no timeout at all (still waiting after 120 s), so a generous subprocess
  timeout (30 s) tells the two apart without measuring speed.
- A result backend that refuses connections (the broker up): `submit` used to try the backend 20 times,
  a second apart, before it said so. The attempts are counted in the command's log (each is a line
  "Retry (n/max)" of celery.backends.redis), not timed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import pytest

from stalk.embedded.control.client import COMMAND_RETRIES
from stalk.embedded.paths import DEMO_APP

from .conftest import ROOT, clean_env, stalk_cmd

pytestmark = pytest.mark.procs


def submit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stalk_cmd("submit", "demo.add", "--args", "[1, 2]", *args), cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=30)


@pytest.mark.xdist_group("cli-broker-down")
def test_submit_to_a_stopped_broker_says_unreachable_in_one_line(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    pid = stack.process("broker").pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        out = submit("--data-dir", str(stack.paths.data_dir))
    finally:
        os.kill(pid, signal.SIGCONT)
    lines = out.stderr.splitlines()
    assert out.returncode != 0 and out.stdout == "" and len(lines) == 1, (out.returncode, out.stdout, out.stderr)
    assert lines[0].startswith("stalk: error: broker ") and " unreachable: " in lines[0], lines
    assert "stalk:***@" in lines[0]  # the stack's broker password masked


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_submit_with_the_result_backend_away_tries_it_once_more_not_twenty_times(tmp_path):
    data = tmp_path / "data"
    out = submit("-A", DEMO_APP, "--broker-url", "redis://127.0.0.1:6379/14",
                 "--result-backend", f"redis://127.0.0.1:{closed_port()}/0", "--data-dir", str(data))
    assert out.returncode != 0 and out.stdout == "", (out.returncode, out.stderr)
    assert out.stderr.startswith("stalk: error: not sent: broker unreachable: "), out.stderr
    log = (data / "logs" / "commands.log").read_text()
    attempts = re.findall(r"Retry \((\d+)/(\w+)\)", log)
    assert attempts and {limit for _, limit in attempts} == {str(COMMAND_RETRIES)}, log[-2000:]
    assert len(attempts) <= COMMAND_RETRIES
