"""`stalk` -> a usable panel attached to a stack already running (`stalk up` started first on a temp data
dir): the Dashboard shows the stack's workers ready, read over its API. Each panel runs in a 120x36 tmux
pane; the screen is read every 20 ms.

Reference, measured in the same run: the panel's first frame with the stack inside its own process, as
before #21 (the tab bar drawn while that stack starts). Target: attached <= 1.2x the reference.

    .venv/bin/python bench/attach.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import ROOT, interrupt, machine, ratio, summary

POLL = 0.02
TIMEOUT = 60.0
FIRST_FRAME = "1 Dashboard"  # the tab bar
IN_PROCESS = ("from stalk.panel.app import run_panel; from stalk.panel.cli.base import build_config; "
              "run_panel(build_config({'data_dir': %r, 'mode': 'embedded', 'beat': False}))")


class Pane:
    """One private tmux server running one command."""

    def __init__(self) -> None:
        self.base = ["tmux", "-L", f"stalk-bench-{uuid.uuid4().hex[:8]}"]

    def start(self, argv: list[str], env: dict[str, str]) -> float:
        exports = [f"{k}={v}" for k, v in env.items() if k.startswith(("STALK_", "PATH", "HOME", "TZ"))]
        start = time.perf_counter()
        subprocess.run([*self.base, "new-session", "-d", "-x", "120", "-y", "36", "-c", str(ROOT),
                        "env", *exports, *argv], check=True, env=env)
        return start

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True).stdout

    def wait_for(self, seen: Callable[[str], bool], start: float) -> float:
        while time.perf_counter() - start < TIMEOUT:
            if seen(self.screen()):
                return time.perf_counter() - start
            time.sleep(POLL)
        raise SystemExit(f"the panel never showed what was awaited; last screen:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session"], capture_output=True).returncode == 0

    def quit(self) -> None:
        """Ctrl-Q (and `q` if it asks first); the panel's own stack stops with it."""
        deadline = time.monotonic() + 60
        while self.alive() and time.monotonic() < deadline:
            subprocess.run([*self.base, "send-keys", "C-q"], capture_output=True)
            time.sleep(1.0)
            if self.alive() and "Quit" in self.screen():
                subprocess.run([*self.base, "send-keys", "q"], capture_output=True)
                time.sleep(1.0)
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def workers_ready(text: str) -> bool:
    rows = [line for line in text.splitlines() if line.strip().startswith("worker:")]
    return bool(rows) and all(" ready " in row for row in rows)


def up(data_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "stalk", "up", "--broker", "embedded", "--no-beat", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "stack is up" in line:
            return proc
    raise SystemExit(f"stalk up exited ({proc.wait()}) before it was up")


def attached(data_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    """(first frame, usable) of `stalk` on the data dir a running `stalk up` holds."""
    stack = up(data_dir, env)
    pane = Pane()
    try:
        start = pane.start([sys.executable, "-m", "stalk", "--data-dir", str(data_dir)], env)
        first = pane.wait_for(lambda text: FIRST_FRAME in text, start)
        usable = pane.wait_for(workers_ready, start)
        return first, usable
    finally:
        pane.quit()
        interrupt(stack)


def in_process(data_dir: Path, env: dict[str, str]) -> float:
    """The first frame of the panel running its own stack (as before #21)."""
    pane = Pane()
    try:
        start = pane.start([sys.executable, "-c", IN_PROCESS % str(data_dir)], env)
        first = pane.wait_for(lambda text: FIRST_FRAME in text, start)
        pane.wait_for(workers_ready, start)  # let it finish starting before it is stopped
        return first
    finally:
        pane.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install tmux)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
    env["STALK_CONFIG"] = ""
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            results.setdefault("in-process stack: first frame", []).append(in_process(Path(tmp) / f"own{run}", env))
            first, usable = attached(Path(tmp) / f"up{run}", env)
            results.setdefault("attached: first frame", []).append(first)
            results.setdefault("attached: workers shown ready", []).append(usable)
    reference = results["in-process stack: first frame"]
    print(f"stalk -> panel, ms, {args.runs} runs, demo app, embedded broker, {machine()}")
    for name, values in results.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:<32} {summary(ms)}   {ratio(values, reference):4.2f}x the in-process first frame")


if __name__ == "__main__":
    main()
