"""Soak: a user's app on Stalk's own redis under faults, with Stalk's defaults, counting runs per task id.

A separate plain Celery client (bench/soak_client.py, another process), the stack's own client and
`stalk submit` send tasks of tests/projects/soak_proj at a steady rate to two prefork workers consuming
both of its queues, while one fault hits every few seconds, in turn: a worker's main process SIGKILLed,
a pool process SIGKILLed, redis-server SIGKILLed, a worker SIGSTOPped for 10 s, beat restarted. The
tasks write every run to a SQLite file; at the end every acknowledged submission is looked up there.

    .venv/bin/python bench/soak.py [--tasks 6000] [--rate 40] [--fault-every 20] [--faults worker,child,...]
                                   [--appendfsync everysec|always] [--settle 90]

Printed: submitted and acknowledged per source; executed once, twice or more, lost (run nowhere and in
no queue), stranded (not run by the end but still in a queue or unacked), late (first run more than
60 s after both its submission and the fault before it); per fault kind, the recovery time: seconds from
the fault until every task acknowledged before it had run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROJECT = ROOT / "tests" / "projects" / "soak_proj"
APP = "soakproj.celery:app"
KINDS = ("worker", "child", "broker", "stop", "beat")
STOP_SECONDS = 10.0
LATE = 60.0  # s after the later of its submission and the last fault before it: a task run later is late
CLI_EVERY = 100  # one submission in this many goes through `stalk submit`
STACK_SHARE = 3  # of every 10 submissions (not the CLI's), this many go through the stack's own client


@dataclass
class Fault:
    kind: str
    at: float
    target: str


@dataclass
class Report:
    submitted: Counter = field(default_factory=Counter)  # per source
    acked: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (source, time)
    refused: Counter = field(default_factory=Counter)
    done: dict[str, list[float]] = field(default_factory=dict)  # id -> times of its finished runs
    cut: Counter = field(default_factory=Counter)  # id -> runs started and never finished
    faults: list[Fault] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    @property
    def once(self) -> int:
        return sum(1 for t in self.acked if len(self.done.get(t, ())) == 1)

    @property
    def duplicates(self) -> list[str]:
        return [t for t in self.acked if len(self.done.get(t, ())) >= 2]

    def recovery(self) -> dict[str, list[float]]:
        """Per fault kind: seconds until every task acknowledged before the fault had run."""
        out: dict[str, list[float]] = defaultdict(list)
        for fault in self.faults:
            waits = [min(self.done[t]) - fault.at for t, (_s, at) in self.acked.items()
                     if at < fault.at and self.done.get(t) and min(self.done[t]) > fault.at]
            out[fault.kind].append(max(waits, default=0.0))
        return out

    def fault_before(self, at: float) -> Fault | None:
        before = [f for f in self.faults if f.at <= at]
        return before[-1] if before else None


def stack_flags(data_dir: Path, appendfsync: str, concurrency: int) -> dict:
    """Stalk's defaults (visibility timeout 3,600 s, prefetch, late acks) with two workers on both queues."""
    queues = ["fetch", "render"]
    return {
        "app": APP, "data_dir": str(data_dir),
        "broker": {"mode": "redis", "appendfsync": appendfsync},
        "workers": [{"name": name, "queues": queues, "concurrency": concurrency} for name in ("w1", "w2")],
    }


class Soak:
    def __init__(self, stack, tasks: int, rate: float, fault_every: float, kinds: tuple[str, ...],
                 settle: float, log=print) -> None:
        self.stack, self.tasks, self.rate = stack, tasks, rate
        self.fault_every, self.kinds, self.settle = fault_every, kinds, settle
        self.log = log
        self.report = Report()
        self.data_dir = Path(stack.paths.data_dir)
        self.db = self.data_dir / "soak-runs.sqlite3"
        self._lock = threading.Lock()
        self._done_submitting = threading.Event()
        self._stop_faults = threading.Event()

    # -- submitting ---------------------------------------------------------------------------

    def _ack(self, source: str, task_id: str, at: float) -> None:
        with self._lock:
            self.report.acked[task_id] = (source, at)

    def _client(self, count: int, rate: float) -> subprocess.Popen:
        out = self.data_dir / "soak-client.tsv"
        env = {**os.environ, "CELERY_BROKER_URL": self.stack.broker.broker_url,
               "CELERY_RESULT_BACKEND": self.stack.broker.backend_url or ""}
        self.report.submitted["client"] += count
        return subprocess.Popen([sys.executable, str(BENCH / "soak_client.py"), "--out", str(out), "--count",
                                 str(count), "--rate", str(rate)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(self.data_dir / "soak-client.err", "w"))

    def _read_client(self) -> None:
        for line in (self.data_dir / "soak-client.tsv").read_text().splitlines():
            task_id, _name, rest = line.split("\t", 2)
            if task_id.startswith("!"):
                self.report.refused["client"] += 1
            else:
                self._ack("client", task_id, float(rest))

    def _stack_client(self, count: int, rate: float) -> None:
        from soak_client import task_name  # noqa: PLC0415

        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            task_id = f"s-{uuid.uuid4()}"
            self.report.submitted["stack"] += 1
            try:
                self.stack.app.send_task(task_name(i), (i,), task_id=task_id)
            except Exception:  # noqa: BLE001
                self.report.refused["stack"] += 1
                continue
            self._ack("stack", task_id, time.time())

    def _cli(self, count: int, every: float) -> None:
        stalk = [sys.executable, "-m", "stalk"]
        for i in range(count):
            time.sleep(every)
            task_id = f"k-{uuid.uuid4()}"
            self.report.submitted["cli"] += 1
            run = subprocess.run([*stalk, "submit", "soakproj.tasks.fetch", "--args", f"[{i}]", "--task-id", task_id,
                                  "--data-dir", str(self.data_dir)], cwd=PROJECT, capture_output=True, text=True,
                                 timeout=120)
            if run.returncode == 0:
                self._ack("cli", task_id, time.time())
            else:
                self.report.refused["cli"] += 1
                self.log(f"  stalk submit refused: {run.stderr.strip()[-300:]}")

    # -- faults -------------------------------------------------------------------------------

    def _workers(self) -> list[str]:
        return [p.name for p in self.stack.processes() if p.role == "worker"]

    def _fault(self, kind: str, n: int) -> Fault:
        workers = self._workers()
        name = workers[n % len(workers)]
        pid = self.stack.process(name).pid
        if kind == "worker":
            os.kill(pid, signal.SIGKILL)
        elif kind == "child":
            children = psutil.Process(pid).children()
            if children:
                children[n % len(children)].kill()
                name = f"{name} pool process"
        elif kind == "broker":
            name = "broker"
            os.kill(self.stack.process("broker").pid, signal.SIGKILL)
        elif kind == "stop":
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(STOP_SECONDS, _cont, (pid,)).start()
        elif kind == "beat":
            name = "beat"
            self.stack.restart_process("beat")
        return Fault(kind, time.time(), name)

    def _faults(self) -> None:
        n = 0
        while not self._stop_faults.wait(self.fault_every) and not self._done_submitting.is_set():
            kind = self.kinds[n % len(self.kinds)]
            fault = self._fault(kind, n)
            self.report.faults.append(fault)
            self.log(f"  {time.strftime('%H:%M:%S')} fault: {kind} ({fault.target})")
            n += 1

    # -- counting -----------------------------------------------------------------------------

    def _read_runs(self) -> None:
        if not self.db.exists():
            return
        with sqlite3.connect(self.db, timeout=30) as db:
            rows = db.execute("SELECT task_id, phase, pid, at FROM runs ORDER BY at").fetchall()
        done: dict[str, list[float]] = defaultdict(list)
        started: Counter = Counter()
        for task_id, phase, _pid, at in rows:
            if phase == "done":
                done[task_id].append(at)
            else:
                started[task_id] += 1
        self.report.done = dict(done)
        self.report.cut = Counter({t: started[t] - len(done.get(t, ())) for t in started
                                   if started[t] > len(done.get(t, ()))})

    def _all_done(self) -> bool:
        self._read_runs()
        return all(t in self.report.done for t in self.report.acked)

    def _held_by_broker(self) -> set[str]:
        """Task ids still in a queue or in kombu's unacked hash."""
        from stalk.embedded.broker.address import redis_py_url  # noqa: PLC0415

        client = redis.Redis.from_url(redis_py_url(self.stack.broker.broker_url))
        try:
            blobs = [*client.hvals("unacked")]
            for queue in ("fetch", "render"):
                blobs += client.lrange(queue, 0, -1)
        finally:
            client.close()
        text = b"\n".join(blobs).decode(errors="replace")
        return {t for t in self.report.acked if t in text}

    def _classify(self) -> None:
        r = self.report
        missing = [t for t in r.acked if t not in r.done]
        held = self._held_by_broker() if missing else set()
        r.stranded = [t for t in missing if t in held]
        r.lost = [t for t in missing if t not in held]
        for task_id, (_source, at) in r.acked.items():
            if task_id in r.done:
                first = min(r.done[task_id])
                fault = r.fault_before(first)
                if first - max(at, fault.at if fault else 0.0) > LATE:
                    r.late.append(task_id)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> Report:
        cli_count = self.tasks // CLI_EVERY
        rest = self.tasks - cli_count
        stack_count = rest * STACK_SHARE // 10
        client_count = rest - stack_count
        duration = self.tasks / self.rate
        client = self._client(client_count, client_count / duration)
        threads = [threading.Thread(target=self._stack_client, args=(stack_count, stack_count / duration)),
                   threading.Thread(target=self._cli, args=(cli_count, duration / max(1, cli_count)))]
        faults = threading.Thread(target=self._faults)
        for thread in (*threads, faults):
            thread.start()
        try:
            client.wait(duration * 3 + 300)
            for thread in threads:
                thread.join()
        finally:
            self._done_submitting.set()
            self._stop_faults.set()
            faults.join()
            if client.poll() is None:
                client.kill()
                client.wait()
        self._read_client()
        last = max([f.at for f in self.report.faults] + [time.time()])
        while time.time() < last + self.settle and not self._all_done():
            time.sleep(1.0)
        self._read_runs()
        self._classify()
        return self.report


def _cont(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def table(report: Report, log=print) -> None:
    r = report
    log(f"{'source':<8} {'submitted':>9} {'acknowledged':>12} {'refused':>8}")
    for source in ("client", "stack", "cli"):
        acked = sum(1 for s, _ in r.acked.values() if s == source)
        log(f"{source:<8} {r.submitted[source]:>9} {acked:>12} {r.refused[source]:>8}")
    log(f"executed once     {r.once}")
    log(f"executed twice+   {len(r.duplicates)}")
    log(f"lost              {len(r.lost)}")
    log(f"stranded          {len(r.stranded)}")
    log(f"late (>{LATE:.0f} s)      {len(r.late)}")
    log(f"runs cut short    {sum(r.cut.values())} (a worker or pool process killed mid-task)")
    log(f"{'fault':<8} {'count':>5} {'recovery median s':>18} {'max s':>7}")
    for kind, waits in sorted(r.recovery().items()):
        log(f"{kind:<8} {len(waits):>5} {statistics.median(waits):>18.1f} {max(waits):>7.1f}")
    for task_id in r.duplicates[:20]:
        fault = r.fault_before(sorted(r.done[task_id])[1])
        log(f"  twice: {task_id} after {fault.kind if fault else 'no fault'}")
    log(f"RESULT acked={len(r.acked)} once={r.once} twice={len(r.duplicates)} lost={len(r.lost)} "
        f"stranded={len(r.stranded)} late={len(r.late)} faults={len(r.faults)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=40.0, help="submissions per second, all sources")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--faults", default=",".join(KINDS), help=f"kinds, in turn: {','.join(KINDS)}")
    parser.add_argument("--appendfsync", default="everysec", choices=("always", "everysec", "no"))
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes per worker")
    parser.add_argument("--settle", type=float, default=90.0, help="s to wait after the last fault")
    args = parser.parse_args()
    kinds = tuple(k for k in args.faults.split(",") if k)
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(BENCH))
    from stalk.embedded import Stack, load_config  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="stalk-soak-") as tmp:
        config = load_config(stack_flags(Path(tmp) / "data", args.appendfsync, args.concurrency),
                             environ={"STALK_CONFIG": ""})
        config = dataclasses.replace(config, app_dir=PROJECT)
        print(f"soak: {args.tasks} tasks at {args.rate}/s, a fault every {args.fault_every} s ({args.faults}), "
              f"appendfsync {args.appendfsync}, visibility timeout {config.broker.visibility_timeout} s")
        stack = Stack(config).start(wait=True, timeout=120)
        try:
            report = Soak(stack, args.tasks, args.rate, args.fault_every, kinds, args.settle).run()
        finally:
            stack.stop()
        table(report)


if __name__ == "__main__":
    main()
