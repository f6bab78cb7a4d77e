"""End to end: the real `stalk` program in tmux against its own redis broker and workers."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, clean_env, stalk_cmd

pytestmark = [pytest.mark.procs, pytest.mark.slow]

TMUX = shutil.which("tmux")


class Tmux:
    """One private tmux server (own socket) running one command in a 120x36 window."""

    def __init__(self, socket: str) -> None:
        self.base = [TMUX or "tmux", "-L", socket]

    def run(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=False).stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        # COLUMNS/LINES (set under xdist) would override the pane size Textual sees.
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        exports = [f"{k}={v}" for k, v in env.items() if k.startswith(("STALK_", "PATH", "HOME", "TZ"))]
        subprocess.run([*self.base, "new-session", "-d", "-x", "120", "-y", "36", "-c", str(ROOT),
                        "env", *exports, *command], check=True, env=env)

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"screen never matched; last screen:\n{text}")

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    session = Tmux(f"stalk-test-{uuid.uuid4().hex[:8]}")
    yield session
    session.kill()


def stack_processes(data_dir: Path) -> list[psutil.Process]:
    """Processes whose command line mentions this test's data dir (workers, redis conf path)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_stalk_in_tmux_shows_stack_logs_and_quits_clean(tmux: Tmux, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tmux.start(stalk_cmd("--broker", "redis", "--no-beat", "--data-dir", str(data_dir)), clean_env(TZ="UTC"))
    try:
        screen = tmux.wait_for(lambda s: "worker:default" in s and "ready" in s and "Starting" not in s)
        assert "Durability" in screen and "AOF everysec" in screen
        assert len(stack_processes(data_dir)) >= 3  # stalk itself, redis-server, the workers
        tmux.keys("6")
        screen = tmux.wait_for(lambda s: "Server initialized" in s)  # the broker's own log
        for _ in range(4):  # step through the process list to the slow worker's log
            tmux.keys("]")
            time.sleep(0.5)
            if "worker:slow" in tmux.screen().splitlines()[1]:
                break
        tmux.wait_for(lambda s: "worker:slow" in s.splitlines()[1] and "Connected to redis" in s)
        tmux.keys("?")
        tmux.wait_for(lambda s: "Keys" in s and "Go to Dashboard" in s)
        tmux.keys("Escape")
        tmux.keys("C-q")
        tmux.wait_for(lambda s: "Leave running" in s)  # the stack it started (#21): stop it, or leave it
        tmux.keys("q")
        tmux.wait_for(lambda s: "Stalk" not in s or "Stopping" in s, timeout=20)
        deadline = time.monotonic() + 30
        while stack_processes(data_dir) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not stack_processes(data_dir), "stalk left processes behind after quitting"
    finally:
        for proc in stack_processes(data_dir):
            proc.kill()
