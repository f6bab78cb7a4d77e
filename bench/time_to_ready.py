"""Launch -> every worker answers ping and beat runs, per broker mode, via the real `stalk up`.

Reference, measured in the same run: one plain `celery worker` started by hand until it logs
"ready" (the floor any supervisor pays). Target: <= 3 s for the whole demo stack.

    .venv/bin/python bench/time_to_ready.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, interrupt, machine, summary

MARKERS = {"stalk": "stack is up", "plain": "ready."}


def timed(argv: list[str], marker: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if marker in line:
                return time.perf_counter() - start
        raise SystemExit(f"{argv[:4]} exited before printing {marker!r}")
    finally:
        interrupt(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
    env["STALK_CONFIG"] = ""
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for mode in ("redis", "embedded", "eager"):
                argv = [sys.executable, "-m", "stalk", "up", "--broker", mode, "--data-dir", f"{tmp}/{mode}{run}"]
                results.setdefault(f"stalk up --broker {mode}", []).append(timed(argv, MARKERS["stalk"], env))
            plain_env = {**env, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15"}
            argv = [sys.executable, "-m", "celery", "-A", "stalk.embedded.demo.app:app", "worker", "-Q", "default",
                    "-c", "1", "-n", f"plain{run}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"]
            results.setdefault("plain celery worker (one)", []).append(timed(argv, MARKERS["plain"], plain_env))
    reference = sorted(results["plain celery worker (one)"])[len(results["plain celery worker (one)"]) // 2]
    print(f"time to ready, seconds, {args.runs} runs, demo app, {machine()}")
    for name, values in results.items():
        median = sorted(values)[len(values) // 2]
        print(f"  {name:<28} {summary(values)}   {median / reference:4.2f}x the plain worker")


if __name__ == "__main__":
    main()
