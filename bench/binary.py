"""The frozen binary: size of the onefile and onedir builds, launch -> first frame of the UI, and
launch -> every process up (`stalk up`, per broker mode), against the unfrozen `python -m stalk`.

First frame: the UI runs in a private tmux server; the time is from launch to the first non-blank
pane capture (polled every 10 ms). Ready: `stalk up` until its status file shows every process
ready/running. Page cache is warm (each variant runs once before timing); medians of --runs.

    .venv/bin/python bench/binary.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import ROOT, interrupt, machine, summary

from stalk.embedded.paths import StackPaths
from stalk.embedded.status_file import read_status

UP_STATES = ("ready", "running")


def build() -> Path:
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--print-path"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout}\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def wait(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def all_up(data_dir: Path) -> bool:
    status = read_status(StackPaths(data_dir).state)
    procs = (status or {}).get("processes") or []
    return bool(procs) and all(p["state"] in UP_STATES for p in procs)


def first_frame(argv: list[str], env: dict[str, str], data_dir: Path) -> tuple[float, float]:
    """(seconds to the first non-blank screen, seconds to every process up) of the UI in tmux."""
    tmux = ["tmux", "-L", f"stalk-bench-{uuid.uuid4().hex[:8]}"]
    exports = [f"{k}={v}" for k, v in env.items() if k.startswith(("STALK_", "PATH", "HOME", "TERM"))]
    try:
        start = time.perf_counter()
        subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "36", "env", *exports, *argv,
                        "--data-dir", str(data_dir)], check=True, env=env, cwd=ROOT)

        def drawn() -> bool:
            pane = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
            return bool(pane.strip())

        wait(drawn, 60, "the first frame")
        frame = time.perf_counter() - start
        wait(lambda: all_up(data_dir), 120, "the stack (UI)", step=0.05)
        ready = time.perf_counter() - start
        subprocess.run([*tmux, "send-keys", "C-q"], check=False)
        wait(lambda: subprocess.run([*tmux, "has-session"], capture_output=True).returncode != 0, 60,
             "the UI to quit", step=0.1)
        return frame, ready
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)


def up_ready(argv: list[str], env: dict[str, str], data_dir: Path, mode: str) -> float:
    """Seconds from launching `stalk up` to every process ready/running in its status file."""
    start = time.perf_counter()
    proc = subprocess.Popen([*argv, "up", "--broker", mode, "--data-dir", str(data_dir)], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: proc.poll() is not None or all_up(data_dir), 120, f"stalk up --broker {mode}", 0.02)
        if proc.returncode is not None:
            raise SystemExit(f"{argv[0]} up --broker {mode} exited with {proc.returncode}")
        return time.perf_counter() - start
    finally:
        interrupt(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("bench/binary.py needs tmux (apt-get install tmux)")
    out = build()
    info = json.loads((out / "build.json").read_text())
    variants = {"onefile": [str(out / "stalk")], "onedir": [str(out / "onedir" / "stalk")],
                "python -m stalk": [sys.executable, "-m", "stalk"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
    env.update(STALK_CONFIG="", TERM="xterm-256color")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs + 1):  # run 0 warms the page cache and is not counted
            for name, argv in variants.items():
                frame, ui_ready = first_frame(argv, env, Path(tmp, f"ui-{name}-{run}"))
                timings = {f"{name}: UI first frame": frame, f"{name}: UI all ready": ui_ready}
                for mode in ("redis", "embedded"):
                    data_dir = Path(tmp, f"up-{mode}-{name}-{run}")
                    timings[f"{name}: up --broker {mode} ready"] = up_ready(argv, env, data_dir, mode)
                if run:
                    for key, value in timings.items():
                        results.setdefault(key, []).append(value * 1000)
    print(f"stalk binary, {args.runs} runs, demo app, {machine()}")
    print(f"  onefile {info['onefile_bytes'] / 1e6:.1f} MB, onedir {info['onedir_bytes'] / 1e6:.1f} MB, "
          f"redis-server bundled: {info['redis_server_bundled']}, build {info['build_seconds']} s")
    print("  milliseconds:")
    for key, values in results.items():
        reference = results[key.replace(key.split(":")[0], "python -m stalk")]
        ratio = sorted(values)[len(values) // 2] / sorted(reference)[len(reference) // 2]
        print(f"  {key:<40} {summary(values)}   {ratio:4.2f}x unfrozen")


if __name__ == "__main__":
    main()
