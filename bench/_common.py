"""Helpers shared by the bench scripts: summaries and a temp data dir."""

from __future__ import annotations

import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):8.1f}  min {min(values):8.1f}  max {max(values):8.1f}"


def ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)


def machine() -> str:
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{time.strftime('%Y-%m-%d')} {platform.machine()} {cpus} cores, Python {platform.python_version()}"


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C a `stalk` process (it stops its stack), killing it if it has not exited within 60 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
