"""No-op tasks/s end to end (send -> result): Stalk's supervised stack vs a plain `celery worker`.

Both run on the same redis-server (Stalk's own), with the same pool and concurrency. Stalk's worker
has events on (-E, task_send_sent_event) and Stalk's event receiver consumes them; the plain worker
is started by hand with events off (the target's reference), and again with -E, as Flower needs it
(what the task events themselves cost). Rounds alternate between the three, each after a warm-up.

    .venv/bin/python bench/stack_throughput.py [--tasks 2000] [--rounds 3] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, ratio, summary

from embedded import Stack, load_config
from embedded.celery_app import client_app, configure_app, load_app

APP = "bench.noop_app:app"


def run_batch(app, n: int) -> float:
    start = time.perf_counter()
    results = [app.send_task("bench.noop", queue="bench") for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    return n / (time.perf_counter() - start)


def plain_worker(broker_url: str, backend_url: str, pool: str, concurrency: int,
                 events: bool = False) -> subprocess.Popen:
    env = {**os.environ, "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": backend_url}
    argv = [sys.executable, "-m", "celery", "-A", APP, "worker", "-Q", "bench", "-P", pool, "-c", str(concurrency),
            "-n", "plain@%h", "--without-gossip", "--without-mingle", "-l", "WARNING", *(["-E"] if events else [])]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(Path(tempfile.gettempdir()) / "plain-worker.log", "w"))


def wait_ping(app, name_prefix: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(k.startswith(name_prefix) for r in replies for k in r):
            return
        time.sleep(0.1)
    raise SystemExit(f"worker {name_prefix}* never answered ping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    args = parser.parse_args()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config({
            "app": APP, "data_dir": str(Path(tmp) / "data"), "beat": False, "broker": {"mode": "redis"},
            "workers": [{"name": "bench", "queues": ["bench"], "concurrency": args.concurrency, "pool": args.pool}],
            "supervisor": {"reload": False},
        }, environ={"STALK_CONFIG": ""})
        stack = Stack(config).start(timeout=60)
        try:
            plain_app = configure_app(client_app(load_app(APP)), stack.broker.broker_url, stack.broker.backend_url)
            run_batch(stack.app, 200)  # warm-up
            stalk, plain, plain_events = [], [], []
            for _ in range(args.rounds):
                stalk.append(run_batch(stack.app, args.tasks))
                stack.stop_process("worker:bench")
                for events, rates in ((False, plain), (True, plain_events)):
                    proc = plain_worker(stack.broker.broker_url, stack.broker.backend_url, args.pool,
                                        args.concurrency, events)
                    try:
                        wait_ping(plain_app, "plain@")
                        run_batch(plain_app, 200)
                        rates.append(run_batch(plain_app, args.tasks))
                    finally:
                        proc.terminate()
                        proc.wait(30)
                stack.start_process("worker:bench")
                stack.supervisor.wait_for(["worker:bench"], 60)
                run_batch(stack.app, 200)  # the same warm-up the plain worker gets
        finally:
            stack.stop()
    print(f"stack throughput, {args.tasks} no-op tasks x {args.rounds} rounds, pool {args.pool} "
          f"-c {args.concurrency}, {machine()}")
    print(f"  stalk (events on)   tasks/s {summary(stalk)}")
    print(f"  plain celery worker tasks/s {summary(plain)}")
    print(f"  plain worker, -E    tasks/s {summary(plain_events)}")
    print(f"  ratio stalk/plain: {ratio(stalk, plain):.2f}x (target >= 0.9x); "
          f"stalk/plain -E: {ratio(stalk, plain_events):.2f}x; plain -E/plain: {ratio(plain_events, plain):.2f}x")


if __name__ == "__main__":
    main()
