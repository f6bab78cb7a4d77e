"""No-op tasks/s end to end (send -> result): Stalk's supervised stack vs a plain `celery worker`.

All three run on the same redis-server (Stalk's own), with the same pool and concurrency:
- stalk: Stalk's worker (events on) fed by Stalk's client (task-sent events on), Stalk's event
  receiver consuming every event in this process;
- plain: a `celery worker` started by hand with Celery's defaults, events off, fed by a plain client
  app (Celery's defaults, events off): the target's reference;
- plain -E: the same worker with -E, as Flower needs it (what the worker's task events cost).
These machines drift by a quarter within a minute, so a run is many short rounds, each measuring the
three back to back (in alternating order) after a warm-up, and the ratios are taken within a round.
CPU ms per task shows where the time goes (worker tree, broker, this process: client and receiver).

    .venv/bin/python bench/stack_throughput.py [--tasks 1000] [--rounds 6] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import ROOT, machine, summary
from celery import Celery

from embedded import Stack, load_config
from embedded.celery_app import load_app

APP = "bench.noop_app:app"
WARM_UP = 200


def run_batch(app: Celery, n: int) -> float:
    start = time.perf_counter()
    results = [app.send_task("bench.noop", queue="bench") for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    return n / (time.perf_counter() - start)


def plain_client(broker_url: str, backend_url: str) -> Celery:
    """Celery's defaults (JSON, no task-sent events): what a user's own client sends."""
    app = Celery("bench_plain", set_as_current=False, broker=broker_url, backend=backend_url)
    app.conf.task_default_queue = "bench"
    return app


def plain_worker(broker_url: str, backend_url: str, pool: str, concurrency: int,
                 events: bool = False) -> subprocess.Popen:
    env = {**os.environ, "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": backend_url}
    argv = [sys.executable, "-m", "celery", "-A", APP, "worker", "-Q", "bench", "-P", pool, "-c", str(concurrency),
            "-n", "plain@%h", "--without-gossip", "--without-mingle", "-l", "WARNING", *(["-E"] if events else [])]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(Path(tempfile.gettempdir()) / "plain-worker.log", "w"))


def wait_ping(app: Celery, name_prefix: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(k.startswith(name_prefix) for r in replies for k in r):
            return
        time.sleep(0.1)
    raise SystemExit(f"worker {name_prefix}* never answered ping")


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU of a process, and of its children (a prefork worker's pool) if `tree`."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)] if tree else [proc]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.plain_app = plain_client(stack.broker.broker_url, stack.broker.backend_url)
        self.rates: dict[str, list[float]] = {"stalk": [], "plain": [], "plain -E": []}
        self.cpu: dict[str, list[dict[str, float]]] = {name: [] for name in self.rates}

    def measure(self, name: str, app: Celery, worker_pid: int) -> None:
        pids = {"worker": worker_pid, "broker": self.stack.process("broker").pid, "client+stalk": os.getpid()}
        before = {k: cpu_seconds(pid, k != "client+stalk") for k, pid in pids.items()}
        self.rates[name].append(run_batch(app, self.args.tasks))
        self.cpu[name].append({k: (cpu_seconds(pid, k != "client+stalk") - before[k]) * 1000 / self.args.tasks
                               for k, pid in pids.items()})

    def stalk_round(self) -> None:
        self.stack.start_process("worker:bench")
        self.stack.supervisor.wait_for(["worker:bench"], 60)
        run_batch(self.stack.app, WARM_UP)
        self.measure("stalk", self.stack.app, self.stack.process("worker:bench").pid)
        self.stack.stop_process("worker:bench")

    def plain_round(self, events: bool) -> None:
        a = self.args
        proc = plain_worker(self.stack.broker.broker_url, self.stack.broker.backend_url, a.pool, a.concurrency, events)
        try:
            wait_ping(self.plain_app, "plain@")
            run_batch(self.plain_app, WARM_UP)
            self.measure("plain -E" if events else "plain", self.plain_app, proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)

    def run(self) -> None:
        self.stack.stop_process("worker:bench")
        steps = [self.stalk_round, lambda: self.plain_round(False), lambda: self.plain_round(True)]
        for i in range(self.args.rounds):
            for step in (steps if i % 2 == 0 else steps[::-1]):
                step()

    def report(self) -> None:
        a = self.args
        print(f"stack throughput, {a.tasks} no-op tasks x {a.rounds} rounds, pool {a.pool} -c {a.concurrency}, "
              f"{machine()}")
        for name, rates in self.rates.items():
            cpu = {k: statistics.median(c[k] for c in self.cpu[name]) for k in self.cpu[name][0]}
            where = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            print(f"  {name:<9} tasks/s {summary(rates)}   CPU ms/task: {where} (total {sum(cpu.values()):.2f})")
        for ref in ("plain", "plain -E"):
            ratios = [s / p for s, p in zip(self.rates["stalk"], self.rates[ref], strict=True)]
            target = " (target >= 0.9x)" if ref == "plain" else ""
            print(f"  ratio stalk/{ref}, per round: median {statistics.median(ratios):.2f}x  "
                  f"min {min(ratios):.2f}x  max {max(ratios):.2f}x{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    args = parser.parse_args()
    os.chdir(ROOT)
    load_app(APP)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config({
            "app": APP, "data_dir": str(Path(tmp) / "data"), "beat": False, "broker": {"mode": "redis"},
            "workers": [{"name": "bench", "queues": ["bench"], "concurrency": args.concurrency, "pool": args.pool}],
            "supervisor": {"reload": False},
        }, environ={"STALK_CONFIG": ""})
        stack = Stack(config).start(timeout=60)
        bench = Bench(stack, args)
        try:
            bench.run()
        finally:
            stack.stop()
    bench.report()


if __name__ == "__main__":
    main()
