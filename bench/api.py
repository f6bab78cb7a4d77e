"""The stack's API under load: the task list's latency at 100,000 tasks while 1,000 events/s arrive, and
the stack's ingestion rate with clients on the change stream.

(a) tasks: a real eager Stack serves its API on its Unix socket; its EventStore is swapped for one holding
--tasks tasks (filled as bench/panel_load.py fills it: generated events through `ingest_many`, an hour of
history, a history db) and fed --rate events/s (panel_load's Feeder: one `store.ingest` each, as the
receiver thread does; the store's changes go to the API's change hub as the stack's own store's do). A
client in another process (the panel is one) sends `GET /api/v1/tasks?limit=500&state=..&sort=..&reverse=..`
back to back for --duration s, cycling through states and sort keys; latency is the client's, from the
request to the parsed JSON. The sort indexes are prepared first (POST /tasks/prepare), as the Tasks screen
does. Reference, same run: the same requests on an idle store of 60 tasks, no events. Target: p99 <= 10 ms.

(b) ingestion: events/s the stack's own store ingests, one `store.ingest` per event as fast as one thread
goes (the receiver's path; the notifier, the history writer and the API's change hub all run), in rounds
that alternate no subscriber and two clients, each its own process, reading /api/v1/changes (tasks,
workers, processes, logs) as an attached panel does; which kind goes first alternates, and each round
starts after a pause of SETTLE s (the last round's writes done). Wall-clock rate; ratio of medians and
the median of each round pair's ratio. Target >= 0.9x.

Run: .venv/bin/python bench/api.py [--tasks 100000] [--rate 1000] [--duration 30] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TZ", "UTC")

from _common import ROOT, machine  # noqa: E402

from stalk.embedded.service import ApiError, StackClient  # noqa: E402

if TYPE_CHECKING:
    from stalk.embedded import Stack
    from stalk.embedded.events import EventStore

IDLE_TASKS = 60
STATES = [None, "SUCCESS", "FAILURE", "STARTED", "success,failure", "RETRY"]
SORTS = ["received", "name", "state", "runtime", "worker", "queue"]
ROUND_EVENTS = 200_000
SETTLE = 3.0  # s before each ingestion round, with or without subscribers


# -- the other processes: a task-list client and change-stream subscribers ------------------------


def run_client(data_dir: str, seconds: float, limit: int) -> None:
    """GET /tasks back to back for `seconds`; prints one JSON line: per request (ms in all, ms until the
    body was read, params index, rows). The rest of the first is the client's JSON parse."""
    client = StackClient.on_data_dir(Path(data_dir))
    http = client._http  # the client's own connection, to time the answer apart from its parse
    out: list[tuple[float, float, int, int]] = []
    combos = [(s, k, r) for s in STATES for k in SORTS for r in (True, False)]
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        state, sort, reverse = combos[i % len(combos)]
        params = {"limit": limit, "sort": sort, "reverse": str(reverse).lower(), **({"state": state} if state else {})}
        t = time.perf_counter()
        response = http.get(client.base + "/tasks", params=params)
        read = time.perf_counter()
        response.raise_for_status()
        page = response.json()
        out.append(((time.perf_counter() - t) * 1000, (read - t) * 1000, i % len(combos), len(page["tasks"])))
        i += 1
    client.close()
    print(json.dumps(out))


def run_subscriber(data_dir: str) -> None:
    """Reads /changes until SIGTERM; then prints the batches and task ids it got."""
    batches = ids = 0

    def stop(*_: Any) -> None:
        raise SystemExit

    signal.signal(signal.SIGTERM, stop)
    try:
        with StackClient.on_data_dir(Path(data_dir)) as client:
            print("subscribed", flush=True)
            for batch in client.changes():
                batches += 1
                ids += len(batch.get("tasks", ()))
    except SystemExit:
        pass
    print(json.dumps({"batches": batches, "task_ids": ids}), flush=True)


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)


# -- (a) GET /tasks ---------------------------------------------------------------------------------


def wire(stack: Stack, store: EventStore) -> Any:
    """`store` in the stack's place, its changes published to the API's change hub (as the stack's own)."""
    stack.events = store
    assert stack.api is not None
    return store.subscribe(stack.api._task_changes)


def prepare(client: StackClient) -> None:
    try:
        client.post("/tasks/prepare", {"sort": [k for k in SORTS if k != "received"], "keep": True})
    except ApiError as exc:
        print(f"  (no /tasks/prepare: {exc.message}; indexes are built by the first queries)")


def tasks_phase(stack: Stack, store: EventStore, data_dir: Path, seconds: float, rate: int,
                limit: int) -> dict[str, Any]:
    from panel_load import Feeder

    unsubscribe = wire(stack, store)
    feeder = Feeder(store, rate) if rate else None
    try:
        with StackClient.on_data_dir(data_dir) as client:
            prepare(client)
            client.get("/tasks", limit=500)  # warm: the first request imports and builds what it needs
        if feeder:
            feeder.start()
        fed_from, started = (feeder.sent if feeder else 0), time.monotonic()
        proc = spawn("--client", str(data_dir), "--duration", str(seconds), "--limit", str(limit))
        out, _ = proc.communicate(timeout=seconds + 120)
        fed = ((feeder.sent if feeder else 0) - fed_from) / (time.monotonic() - started)
    finally:
        if feeder:
            feeder.stop()
        unsubscribe()
    rows = json.loads(out)
    ms = sorted(r[0] for r in rows)
    answered = sorted(r[1] for r in rows)
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": ms[-1],
            "answer_p50": pct(answered, 50), "answer_p99": pct(answered, 99),
            "rows": statistics.mean(r[3] for r in rows), "fed": fed,
            "by_sort": {k: pct(sorted(r[0] for r in rows if SORTS[(r[2] // 2) % len(SORTS)] == k), 99)
                        for k in SORTS},
            "by_state": {str(st): pct(sorted(r[0] for r in rows if STATES[r[2] // (2 * len(SORTS))] == st), 99)
                         for st in STATES}}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p / 100))]


# -- (b) ingestion with and without subscribers ---------------------------------------------------


def ingest_round(store: EventStore, events: list[dict]) -> float:
    """Events/s for one `store.ingest` per event, timestamps made current (as a live receiver's)."""
    now = time.time()
    shift = now - events[0]["timestamp"]
    for event in events:
        event["timestamp"] += shift
        event["local_received"] += shift
    t = time.perf_counter()
    for event in events:
        store.ingest(event)
    return len(events) / (time.perf_counter() - t)


def ingestion(stack: Stack, data_dir: Path, rounds: int, per_round: int) -> dict[str, Any]:
    from event_ingest import generate

    store = stack.events
    assert store is not None and stack.api is not None
    hub = stack.api.hub
    none: list[float] = []
    two: list[float] = []
    got: list[dict] = []
    seed = 500
    ingest_round(store, generate(per_round, seed=seed))  # warm-up
    for n in range(rounds):
        for subscribers in ((0, 2) if n % 2 == 0 else (2, 0)):  # either first in turn
            seed += 1
            events = generate(per_round, seed=seed)
            procs = [spawn("--subscribe", str(data_dir)) for _ in range(subscribers)]
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "subscribed"
            deadline = time.monotonic() + 10
            while len(hub) < subscribers and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(SETTLE)  # the last round's backlog (notifier, history writer) written first
            rate = ingest_round(store, events)
            time.sleep(0.3)  # the last batches reach the subscribers
            for proc in procs:
                proc.terminate()
                out, _ = proc.communicate(timeout=30)
                got.append(json.loads(out.strip().splitlines()[-1]))
            (two if subscribers else none).append(rate)
    return {"none": none, "two": two, "got": got}


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the store for (a)")
    parser.add_argument("--rate", type=int, default=1000, help="events/s fed during (a)")
    parser.add_argument("--limit", type=int, default=500, help="tasks per request in (a)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of requests in (a)")
    parser.add_argument("--reference", type=float, default=10.0, help="seconds of requests on the idle store")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (b), each: none, then two subscribers")
    parser.add_argument("--round-events", type=int, default=ROUND_EVENTS, help="events per round of (b)")
    parser.add_argument("--only", choices=["tasks", "ingest"], help="run one part")
    parser.add_argument("--max-pending", type=int, help="try another hub.MAX_PENDING (ids a client may have "
                                                        "pending per topic before it gets a resync instead)")
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds, 5,000 tasks")
    parser.add_argument("--client", metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--subscribe", metavar="DATA_DIR", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.client:
        return run_client(opts.client, opts.duration, opts.limit)
    if opts.subscribe:
        return run_subscriber(opts.subscribe)
    if opts.quick:
        opts.tasks, opts.duration, opts.reference = min(opts.tasks, 5000), 2.0, 1.0
        opts.rounds, opts.round_events = 1, 5000
    from stalk.embedded import Stack
    from stalk.embedded.config import load_config
    from stalk.embedded.service import hub

    if opts.max_pending is not None:
        hub.MAX_PENDING = opts.max_pending

    print(f"the stack's API under load; {machine()}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="stalk-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        config = load_config({"data_dir": str(data_dir), "broker": {"mode": "eager"}, "beat": False},
                             environ={"STALK_CONFIG": ""})
        stack = Stack(config).start(wait=True, timeout=60)
        own = stack.events
        try:
            if opts.only != "ingest":
                bench_tasks(stack, data_dir, Path(tmp), opts)
                stack.events = own
            if opts.only != "tasks":
                bench_ingestion(stack, data_dir, opts)
        finally:
            stack.events = own
            stack.stop()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


def bench_tasks(stack: Stack, data_dir: Path, tmp: Path, opts: argparse.Namespace) -> None:
    from panel_load import prefilled  # the stores are filled as the panel's load bench fills them

    with StackClient.on_data_dir(data_dir) as client:
        try:
            client.get("/tasks", limit=1)
        except ApiError as exc:
            print(f"(a) skipped: GET /api/v1/tasks is not served yet ({exc.message})")
            return
    idle = prefilled(IDLE_TASKS, None).start()
    ref = tasks_phase(stack, idle, data_dir, opts.reference, 0, opts.limit)
    idle.stop()
    t = time.perf_counter()
    store = prefilled(opts.tasks, tmp / "history.sqlite3").start()
    print(f"  store filled in {time.perf_counter() - t:.1f} s: {len(store)} tasks")
    big = tasks_phase(stack, store, data_dir, opts.duration, opts.rate, opts.limit)
    store.stop()
    print(f"(a) GET /api/v1/tasks?limit={opts.limit} (state x sort x reverse cycled), one client process, "
          "back to back")
    for label, r in ((f"reference: idle store, {IDLE_TASKS} tasks, no events, {opts.reference:.0f} s", ref),
                     (f"{opts.tasks:,} tasks, {r_fed(big):,.0f} events/s fed, {opts.duration:.0f} s", big)):
        print(f"  {label}: {r['n']} requests, {r['rows']:.0f} rows each on average")
        print(f"    p50 {r['p50']:.1f} ms  p90 {r['p90']:.1f}  p99 {r['p99']:.1f}  max {r['max']:.1f}"
              f"  (body read, before the client's JSON parse: p50 {r['answer_p50']:.1f}  p99 {r['answer_p99']:.1f})")
    print("    p99 by sort: " + "  ".join(f"{k} {v:.1f}" for k, v in big["by_sort"].items()))
    print("    p99 by state: " + "  ".join(f"{k} {v:.1f}" for k, v in big["by_state"].items()))
    print(f"  under load / reference: p50 {big['p50'] / ref['p50']:.2f}x  p99 {big['p99'] / ref['p99']:.2f}x;"
          f"  target p99 <= 10 ms: {'met' if big['p99'] <= 10 else 'NOT met'} ({big['p99']:.1f} ms)")


def r_fed(r: dict[str, Any]) -> float:
    return float(r["fed"])


def bench_ingestion(stack: Stack, data_dir: Path, opts: argparse.Namespace) -> None:
    res = ingestion(stack, data_dir, opts.rounds, opts.round_events)
    none, two = res["none"], res["two"]
    from stalk.embedded.service import hub

    print(f"(b) the stack's ingestion, {opts.round_events:,} events a round, one store.ingest each, "
          f"{opts.rounds} rounds each; hub.MAX_PENDING {hub.MAX_PENDING:,}")
    print(f"  no subscriber:           median {statistics.median(none):9,.0f} events/s  "
          f"(min {min(none):,.0f}, max {max(none):,.0f})")
    print(f"  two /changes clients:    median {statistics.median(two):9,.0f} events/s  "
          f"(min {min(two):,.0f}, max {max(two):,.0f})")
    ratio = statistics.median(two) / statistics.median(none)
    got = res["got"]
    pairs = sorted(b / a for a, b in zip(none, two, strict=True))  # each round's two against its own none
    print(f"  ratio two / none: {ratio:.2f}x (per round: median {statistics.median(pairs):.2f}x, "
          f"{pairs[0]:.2f}-{pairs[-1]:.2f}); target >= 0.9x: {'met' if ratio >= 0.9 else 'NOT met'}")
    if got:
        print(f"  each subscriber got {statistics.median(g['batches'] for g in got):.0f} batches and "
              f"{statistics.median(g['task_ids'] for g in got):,.0f} task ids a round (median)")


if __name__ == "__main__":
    main()
