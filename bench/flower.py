"""Stalk's Flower-compatible API vs real Flower 2.2.0, side by side in one run on one broker (issue #22).

Stalk: `stalk up` in its own process (bench/noop_app.py, Stalk's own redis-server, one idle worker on a
queue nothing is sent to, the Flower-compatible API on a free port). Flower: `celery -A bench.noop_app:app
--broker <Stalk's redis> --result-backend <the same> flower --max_tasks=100000 --persistent=False`, run from
its own venv (bench/.venv-flower: flower==2.2.0 and the celery Stalk's venv has; made on first use).
Flower is never a dependency of Stalk: it runs only here, as a subprocess.

(a) 100,000 tasks: synthetic task events (task-sent, -received, -started, -succeeded, with the fields
Celery's dispatchers send) published by this process with `app.events.Dispatcher` to the broker's event
exchange, which both servers consume; paced so neither falls behind by more than LAG chunks (a slow pub/sub
reader is cut off by redis), until both count every task-succeeded in `flower_events_total` (/metrics).
(b) `GET /api/tasks?limit=100`, sequential, alternating the two servers, keep-alive: p50/p99. Target: Stalk's
p99 <= 0.25x Flower's. (c) RSS of each serving process at 100,000 tasks (psutil). Target <= 0.5x.
(d) `POST /api/task/async-apply/bench.noop` with a small JSON body from --clients keep-alive connections (an
asyncio client in its own process) for --seconds, rounds alternating which server goes first; the tasks go to
a queue nothing consumes (dropped with the broker at the end). Target: Stalk's requests/s >= 2x Flower's.

Run: .venv/bin/python bench/flower.py [--tasks 100000] [--requests 200] [--clients 8] [--seconds 5]
     [--rounds 3] [--quick] [--stalk-only]
--stalk-only runs Stalk's side alone (no Flower, no venv: the smoke test's mode).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _common import ROOT, interrupt, machine

APP = "bench.noop_app:app"
FLOWER_VERSION = "2.2.0"
FLOWER_VENV = ROOT / "bench" / ".venv-flower"
TASK_NAME = "bench.synthetic"  # the synthetic tasks' name; async-apply sends bench.noop
PROBE_NAME = "bench.probe"  # tasks published until both servers are seen consuming events
APPLY_BODY = b'{"args": [], "kwargs": {}}'
CHUNK = 500  # tasks published before looking at both servers' counts
LAG = 2  # chunks a server may be behind before publishing waits (redis cuts off a pub/sub reader ~8 MB behind)
TARGETS = {"apply": 2.0, "p99": 0.25, "rss": 0.5}
STACK_TOML = """
beat = false
[flower]
port = 0
[[workers]]
name = "idle"
queues = ["idle"]
concurrency = 1
pool = "solo"
"""


# -- the two servers ------------------------------------------------------------------------------


def flower_python() -> Path:
    """bench/.venv-flower's python, with flower==2.2.0 and Stalk's celery, kombu and redis versions."""
    import celery
    import kombu
    import redis

    python = FLOWER_VENV / "bin" / "python"
    wanted = {"flower": FLOWER_VERSION, "celery": celery.__version__, "kombu": kombu.__version__,
              "redis": redis.__version__}
    probe = "import flower, celery, kombu, redis; print(flower.__version__, celery.__version__, kombu.__version__, redis.__version__)"
    if python.exists():
        have = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.split()
        if have == list(wanted.values()):
            return python
    print(f"  making {FLOWER_VENV.relative_to(ROOT)}: " + ", ".join(f"{k}=={v}" for k, v in wanted.items()))
    subprocess.run([sys.executable, "-m", "venv", FLOWER_VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *(f"{k}=={v}" for k, v in wanted.items())], check=True)
    return python


class StalkSide:
    """`stalk up` on a temp data dir; its API says the serving pid, the broker and the Flower port."""

    def __init__(self, tmp: Path) -> None:
        config = tmp / "stalk.toml"
        config.write_text(STACK_TOML)
        self.data_dir = tmp / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
        env["STALK_CONFIG"] = ""
        argv = [sys.executable, "-m", "stalk", "up", "-A", APP, "--broker", "redis", "--data-dir", str(self.data_dir),
                "--config", str(config), "--no-beat"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.log: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)
            if "stack is up" in line:
                break
        else:
            raise SystemExit("stalk up exited before it was up:\n" + "".join(self.log[-30:]))
        from stalk.embedded.service import StackClient

        with StackClient.on_data_dir(self.data_dir) as client:
            status = client.get("/stack")
        self.pid: int = status["pid"]
        self.broker_url: str = status["broker"]["broker_url"]
        self.backend_url: str = status["broker"]["backend_url"]
        self.url: str = status["api"]["flower"]["url"]
        assert self.url, status["api"]["flower"]

    def stop(self) -> None:
        interrupt(self.proc)


class FlowerSide:
    def __init__(self, python: Path, broker_url: str, backend_url: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_", "FLOWER_"))}
        env["PYTHONPATH"] = str(ROOT)  # bench.noop_app
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # Flower 2.x answers its API without auth only with this
        argv = [str(python), "-m", "celery", "-A", APP, "--broker", broker_url, "--result-backend", backend_url,
                "flower", f"--port={port}", "--address=127.0.0.1", "--max_tasks=100000", "--persistent=False",
                "--logging=warning"]
        self.log_path = Path(tempfile.gettempdir()) / f"bench-flower-{port}.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"flower exited: {self.log_path.read_text()[-3000:]}")
            try:
                if get(self.url, "/healthcheck")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"flower never answered /healthcheck: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    if conn is None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def connect(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=60)


# -- (a) the same 100,000 tasks' events into both -------------------------------------------------

SUCCEEDED = re.compile(r'^flower_events_total\{([^}]*)\} ([\d.e+]+)$', re.M)


def succeeded(url: str, name: str = TASK_NAME) -> int:
    """task-succeeded events of task `name` the server has counted (its /metrics, as Flower's)."""
    status, body = get(url, "/metrics")
    if status != 200:
        return -1
    return int(sum(float(v) for labels, v in SUCCEEDED.findall(body.decode())
                   if 'type="task-succeeded"' in labels and f'task="{name}"' in labels))


def task_events(i: int, now: float, name: str = TASK_NAME) -> list[tuple[str, str, dict[str, Any]]]:
    """One task's life as (sender, type, fields): the client's task-sent, the worker's received, started,
    succeeded, with the fields Celery 5's amqp.send_task_message and worker request send."""
    tid = str(uuid.uuid4())
    args, kwargs = f"({i},)", "{}"
    return [
        ("client", "task-sent", {"uuid": tid, "root_id": tid, "parent_id": None, "name": name, "args": args,
                                 "kwargs": kwargs, "retries": 0, "eta": None, "expires": None, "queue": "bench",
                                 "exchange": "", "routing_key": "bench", "timestamp": now}),
        ("worker", "task-received", {"uuid": tid, "name": name, "args": args, "kwargs": kwargs,
                                     "root_id": tid, "parent_id": None, "retries": 0, "eta": None, "expires": None,
                                     "timestamp": now + 0.001}),
        ("worker", "task-started", {"uuid": tid, "timestamp": now + 0.002}),
        ("worker", "task-succeeded", {"uuid": tid, "result": "None", "runtime": 0.0005, "timestamp": now + 0.003}),
    ]


def fill(broker_url: str, urls: dict[str, str], n: int) -> float:
    """Publishes n tasks' events, paced by the slower server; returns when both count n. Seconds taken."""
    from celery import Celery

    app = Celery("bench_events", broker=broker_url, set_as_current=False)
    started = time.perf_counter()
    host = socket.gethostname()
    with app.connection_for_write() as conn:
        senders = {who: app.events.Dispatcher(conn, hostname=f"bench-{who}@{host}") for who in ("client", "worker")}
        consuming(senders, urls)
        sent = 0
        while sent < n:
            wait_counts(urls, sent - LAG * CHUNK)
            now = time.time()
            for i in range(sent, min(n, sent + CHUNK)):
                for who, kind, fields in task_events(i, now + (i - sent) * 1e-4):
                    senders[who].send(kind, **fields)
            sent = min(n, sent + CHUNK)
            if sent % 20_000 == 0:
                print(f"  {sent:,} tasks published, {time.perf_counter() - started:.0f} s", flush=True)
        for dispatcher in senders.values():
            dispatcher.close()
    wait_counts(urls, n, timeout=600)
    return time.perf_counter() - started


def consuming(senders: dict[str, Any], urls: dict[str, str], timeout: float = 60) -> int:
    """Publishes a probe task's events every 0.2 s until both servers have counted one: their event
    receivers are subscribed (events published before that are lost to them). Returns the probes sent."""
    deadline, probes = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        for who, kind, fields in task_events(probes, time.time(), PROBE_NAME):
            senders[who].send(kind, **fields)
        probes += 1
        time.sleep(0.2)
        if all(succeeded(url, PROBE_NAME) >= 1 for url in urls.values()):
            return probes
    raise SystemExit(f"the servers' event receivers never counted a probe task within {timeout:.0f} s")


def wait_counts(urls: dict[str, str], at_least: int, timeout: float = 300) -> None:
    if at_least <= 0:
        return
    deadline = time.monotonic() + timeout
    counts = {}
    while time.monotonic() < deadline:
        counts = {name: succeeded(url) for name, url in urls.items()}
        if all(c >= at_least for c in counts.values()):
            return
        time.sleep(0.1)
    raise SystemExit(f"the servers did not count {at_least:,} tasks within {timeout:.0f} s: {counts}")


# -- (b) GET /api/tasks?limit=100 -----------------------------------------------------------------


def task_list_latency(urls: dict[str, str], requests: int, limit: int) -> dict[str, dict[str, float]]:
    """Sequential requests, the servers alternating (which goes first alternates too); ms from sending the
    request to the body read; every answer checked to hold `limit` tasks."""
    path = f"/api/tasks?limit={limit}"
    conns = {name: connect(url) for name, url in urls.items()}
    ms: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    for i in range(requests + 5):  # five warm-ups each
        for name in (names if i % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            status, body = get(urls[name], path, conns[name])
            took = (time.perf_counter() - t) * 1000
            rows = len(json.loads(body)) if status == 200 else -1
            if status != 200 or rows != limit:
                raise SystemExit(f"{name} GET {path}: {status}, {rows} tasks: {body[:300]!r}")
            if i >= 5:
                ms[name].append(took)
    for conn in conns.values():
        conn.close()
    return {name: {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": max(v), "n": len(v)}
            for name, v in ms.items()}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


# -- (d) POST /api/task/async-apply: an asyncio client in its own process ------------------------


async def _load(url: str, path: str, seconds: float, clients: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(APPLY_BODY)}\r\n\r\n").encode() + APPLY_BODY
    statuses: dict[int, int] = {}
    first_error: list[bytes] = []
    deadline = time.monotonic() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200 and not first_error:
                    first_error.append(body[:300])
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    took = time.monotonic() - started
    return {"ok": statuses.get(200, 0), "rate": statuses.get(200, 0) / took, "statuses": statuses,
            "error": first_error[0].decode(errors="replace") if first_error else None}


def run_load(url: str, seconds: float, clients: int) -> None:
    print(json.dumps(asyncio.run(_load(url, "/api/task/async-apply/bench.noop", seconds, clients))))


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def apply_rates(sides: dict[str, Any], seconds: float, clients: int, rounds: int) -> dict[str, dict[str, list]]:
    """Requests/s and the serving process's CPU ms per request, `rounds` each, the order alternating."""
    out: dict[str, dict[str, list]] = {name: {"rate": [], "cpu_ms": [], "errors": []} for name in sides}
    names = list(sides)
    for r in range(rounds + 1):  # the first round warms both up and is not counted
        for name in (names if r % 2 == 0 else names[::-1]):
            side = sides[name]
            cpu = cpu_seconds(side.pid)
            run = subprocess.run([sys.executable, __file__, "--load", side.url, "--seconds", str(seconds),
                                  "--clients", str(clients)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=seconds + 120)
            if run.returncode != 0:
                raise SystemExit(f"load client against {name} failed: {run.stderr[-2000:]}")
            res = json.loads(run.stdout)
            if r == 0:
                continue
            out[name]["rate"].append(res["rate"])
            out[name]["cpu_ms"].append((cpu_seconds(side.pid) - cpu) * 1000 / max(res["ok"], 1))
            bad = {s: c for s, c in res["statuses"].items() if s != "200"}
            if bad:
                out[name]["errors"].append(f"{bad}: {res['error']}")
    return out


# -- main -----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def report(opts: argparse.Namespace, fill_s: float, latency: dict, rss: dict, apply: dict, flower: bool) -> None:
    print(f"(a) {opts.tasks:,} tasks' events (4 each) published in {fill_s:.1f} s, counted by "
          f"{'both servers' if flower else 'Stalk'} (flower_events_total, task-succeeded)")
    if flower:
        print("    Flower runs with --max_tasks=100000 --persistent=False: it keeps up to 100,000 tasks in memory")
    print("    Stalk keeps the newest 20,000 in memory (its store's cap) and every task in its history db (sqlite)")
    rows = [("async-apply, requests/s (median)", "apply", lambda s: statistics.median(apply[s]["rate"]), "{:,.0f}",
             lambda s, f: s / f, ">="),
            ("  serving process CPU ms/request", None, lambda s: statistics.median(apply[s]["cpu_ms"]), "{:.2f}",
             lambda s, f: s / f, ""),
            (f"GET /api/tasks?limit={opts.limit} p50 ms", None, lambda s: latency[s]["p50"], "{:.1f}",
             lambda s, f: s / f, ""),
            (f"GET /api/tasks?limit={opts.limit} p99 ms", "p99", lambda s: latency[s]["p99"], "{:.1f}",
             lambda s, f: s / f, "<="),
            (f"RSS at {opts.tasks:,} tasks, MB", "rss", lambda s: rss[s], "{:.0f}", lambda s, f: s / f, "<=")]
    print(f"{'':<36} {'Stalk':>10}" + (f" {'Flower':>10} {'ratio':>8}  target" if flower else ""))
    for label, target, value, fmt, ratio, cmp in rows:
        stalk = value("stalk")
        if not flower:
            print(f"{label:<36} {fmt.format(stalk):>10}")
            continue
        fl = value("flower")
        r = ratio(stalk, fl)
        verdict = ""
        if target:
            goal = TARGETS[target]
            met = r >= goal if cmp == ">=" else r <= goal
            verdict = f"{cmp} {goal:g}x: {'met' if met else 'NOT met'}"
            if target != "apply" and opts.tasks < 100_000:
                verdict = f"({cmp} {goal:g}x at 100,000 tasks)"
        print(f"{label:<36} {fmt.format(stalk):>10} {fmt.format(fl):>10} {r:7.2f}x  {verdict}")
    for name in apply:
        rates = ", ".join(f"{v:,.0f}" for v in apply[name]["rate"])
        print(f"  {name} async-apply rounds: {rates} requests/s; {opts.clients} clients, {opts.seconds:g} s each")
        for err in apply[name]["errors"]:
            print(f"  {name} async-apply non-200 answers: {err}")
    for name, r in latency.items():
        print(f"  {name} GET /api/tasks: {r['n']} requests, p50 {r['p50']:.1f} ms  p90 {r['p90']:.1f}  "
              f"p99 {r['p99']:.1f}  max {r['max']:.1f}")
    print(f"  RSS: Stalk's stack process (event store, history writer, receiver, supervisor, both APIs; not its "
          f"redis-server nor its worker){'; Flower: its one process' if flower else ''}")
    print(f"RESULT tasks={opts.tasks} stalk_apply_rps={statistics.median(apply['stalk']['rate']):.1f} "
          f"stalk_p99_ms={latency['stalk']['p99']:.2f} stalk_rss_mb={rss['stalk']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks whose events both servers ingest")
    parser.add_argument("--requests", type=int, default=200, help="GET /api/tasks requests to each server")
    parser.add_argument("--limit", type=int, default=100, help="tasks per GET /api/tasks")
    parser.add_argument("--clients", type=int, default=8, help="concurrent async-apply connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of async-apply a round")
    parser.add_argument("--rounds", type=int, default=3, help="async-apply rounds each (after one warm-up)")
    parser.add_argument("--stalk-only", action="store_true", help="Stalk's side alone: no Flower, no venv")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 tasks, seconds")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.load:
        return run_load(opts.load, opts.seconds, opts.clients)
    if opts.quick:
        opts.tasks, opts.requests, opts.seconds, opts.rounds = min(opts.tasks, 2000), 30, 1.0, 1
    if opts.tasks < opts.limit:
        parser.error("--tasks must be at least --limit")
    print(f"Stalk's Flower-compatible API vs Flower {FLOWER_VERSION}; {machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    python = None if opts.stalk_only else flower_python()
    with tempfile.TemporaryDirectory(prefix="stalk-bench-flower-") as tmp:
        sides: dict[str, Any] = {}
        try:
            sides["stalk"] = stalk = StalkSide(Path(tmp))
            if python is not None:
                sides["flower"] = FlowerSide(python, stalk.broker_url, stalk.backend_url)
            urls = {name: side.url for name, side in sides.items()}
            fill_s = fill(stalk.broker_url, urls, opts.tasks)
            latency = task_list_latency(urls, opts.requests, opts.limit)
            rss = {name: rss_mb(side.pid) for name, side in sides.items()}
            apply = apply_rates(sides, opts.seconds, opts.clients, opts.rounds)
        finally:
            for side in sides.values():
                side.stop()
    report(opts, fill_s, latency, rss, apply, python is not None)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
