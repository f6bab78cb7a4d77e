"""No-op tasks/s end to end (send -> result): Stalk's supervised stack vs a plain `celery worker`.

All three run on the same redis-server (Stalk's own), with the same pool and concurrency:
- stalk: Stalk's worker (events on) fed by Stalk's client (task-sent events on), Stalk's event
  receiver consuming every event in this process;
- plain: a `celery worker` started by hand with Celery's defaults, events off, fed by a plain client
  app (Celery's defaults, events off): the target's reference;
- plain -E: the same worker with -E, as Flower needs it (what the worker's task events cost).
These machines drift by a quarter within a minute, so the three workers stay up on their own queues and a
run is many short rounds, each measuring the three back to back (in alternating order), and the ratios
are taken within a round.
CPU ms per task shows where the time goes (worker tree, broker, this process: client and receiver).

    .venv/bin/python bench/stack_throughput.py [--tasks 500] [--rounds 20] [--concurrency 2] [--stock-transport]

--stock-transport runs Stalk's processes on kombu's redis transport as it ships instead of Stalk's
(which reuses one redis-py client per pool): what the rest of Stalk costs on its own.
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

from stalk.embedded import Stack, load_config
from stalk.embedded.celery_app import load_app

APP = "bench.noop_app:app"
WARM_UP = 200


def run_batch(app: Celery, n: int, queue: str = "bench") -> float:
    start = time.perf_counter()
    results = [app.send_task("bench.noop", queue=queue) for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    return n / (time.perf_counter() - start)


def plain_client(broker_url: str, backend_url: str) -> Celery:
    """Celery's defaults (JSON, no task-sent events): what a user's own client sends."""
    return Celery("bench_plain", set_as_current=False, broker=broker_url, backend=backend_url)


def plain_worker(broker_url: str, backend_url: str, pool: str, concurrency: int, queue: str,
                 events: bool = False) -> subprocess.Popen:
    env = {**os.environ, "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": backend_url}
    argv = [sys.executable, "-m", "celery", "-A", APP, "worker", "-Q", queue, "-P", pool, "-c", str(concurrency),
            "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "-l", "WARNING", *(["-E"] if events else [])]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(Path(tempfile.gettempdir()) / f"{queue}-worker.log", "w"))


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
    """All three workers stay up, each on its own queue (an idle one costs next to nothing), and the
    batches alternate between them: machine drift hits the three alike."""

    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.plain_app = plain_client(stack.broker.broker_url, stack.broker.backend_url)
        self.rates: dict[str, list[float]] = {"stalk": [], "plain": [], "plain -E": []}
        self.cpu: dict[str, list[dict[str, float]]] = {name: [] for name in self.rates}
        self.workers: dict[str, subprocess.Popen] = {}
        self.main: dict[str, list[float]] = {name: [] for name in self.rates}  # the worker's own process

    def start_plain_workers(self) -> None:
        a, broker = self.args, self.stack.broker
        for queue, events in (("plain", False), ("plainE", True)):
            self.workers[queue] = plain_worker(broker.broker_url, broker.backend_url, a.pool, a.concurrency, queue,
                                               events)
        for queue in self.workers:
            wait_ping(self.plain_app, f"{queue}@")

    def stop_plain_workers(self) -> None:
        for proc in self.workers.values():
            proc.terminate()
        for proc in self.workers.values():
            proc.wait(30)

    def measure(self, name: str) -> None:
        app, queue, worker_pid = self.target(name)
        pids = {"worker": worker_pid, "broker": self.stack.process("broker").pid, "client+stalk": os.getpid()}
        before = {k: cpu_seconds(pid, k != "client+stalk") for k, pid in pids.items()}
        main_before = cpu_seconds(worker_pid, tree=False)
        self.rates[name].append(run_batch(app, self.args.tasks, queue))
        cpu = {k: (cpu_seconds(pid, k != "client+stalk") - before[k]) * 1000 / self.args.tasks for k, pid in pids.items()}
        self.cpu[name].append(cpu)
        self.main[name].append((cpu_seconds(worker_pid, tree=False) - main_before) * 1000 / self.args.tasks)

    def target(self, name: str) -> tuple[Celery, str, int]:
        if name == "stalk":
            return self.stack.app, "bench", self.stack.process("worker:bench").pid
        queue = "plain" if name == "plain" else "plainE"
        return self.plain_app, queue, self.workers[queue].pid

    def run(self) -> None:
        self.start_plain_workers()
        try:
            for name in self.rates:  # warm-up
                app, queue, _pid = self.target(name)
                run_batch(app, WARM_UP, queue)
            names = list(self.rates)
            for i in range(self.args.rounds):
                for name in (names if i % 2 == 0 else names[::-1]):
                    self.measure(name)
        finally:
            self.stop_plain_workers()

    def report(self) -> None:
        a = self.args
        transport = "kombu's stock" if a.stock_transport else "Stalk's"
        print(f"stack throughput, {a.tasks} no-op tasks x {a.rounds} rounds, pool {a.pool} -c {a.concurrency}, "
              f"Stalk on {transport} redis transport, {machine()}")
        for name, rates in self.rates.items():
            cpu = {k: statistics.median(c[k] for c in self.cpu[name]) for k in self.cpu[name][0]}
            where = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            where += f" (worker main process {statistics.median(self.main[name]):.2f})"
            print(f"  {name:<9} tasks/s {summary(rates)}   CPU ms/task: {where} (total {sum(cpu.values()):.2f})")
        for ref in ("plain", "plain -E"):
            ratios = [s / p for s, p in zip(self.rates["stalk"], self.rates[ref], strict=True)]
            target = " (target >= 0.9x)" if ref == "plain" else ""
            print(f"  ratio stalk/{ref}, per round: median {statistics.median(ratios):.2f}x  "
                  f"min {min(ratios):.2f}x  max {max(ratios):.2f}x{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--stock-transport", action="store_true", help="Stalk on kombu's own redis transport")
    args = parser.parse_args()
    if args.stock_transport:
        os.environ["BENCH_STOCK_TRANSPORT"] = "1"  # read by the app, here and in Stalk's worker
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
