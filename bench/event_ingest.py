"""Event ingestion: Stalk's event fold vs celery.events.state.State on the same generated events.

100,000 realistic events (task-sent/received/started/succeeded, some failures, retries, progress and
worker heartbeats; reprs and fields as Celery's worker sends them) are fed to both, in the same
process, alternating rounds. Prints events per CPU second of the process (median, min, max; CPU time,
not wall time, so other load on a shared machine does not skew the ratio), the ratio, and memory per
retained task measured with tracemalloc. Run: .venv/bin/python bench/event_ingest.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import machine, ratio, summary
from celery.events.state import State

from stalk.embedded.events import EventStore

HOSTS = [f"{q}@bench-host" for q in ("default", "slow", "io")]
NAMES = ["demo.add", "demo.slow_add", "shop.orders.charge", "mail.send_receipt", "reports.build"]
TRACEBACK = ('Traceback (most recent call last):\n  File "/app/tasks.py", line 42, in charge\n'
             '    raise ValueError("card declined")\nValueError: card declined\n')


def task_events(now: float, rng: random.Random) -> list[dict]:
    """One task's life as the events a worker and a client send (reprs, clocks, pids...)."""
    tid, host, name = str(uuid.UUID(int=rng.getrandbits(128))), rng.choice(HOSTS), rng.choice(NAMES)
    args, kwargs = repr((rng.randint(0, 10**6), rng.randint(0, 10**6))), repr({"retry": False})
    base = {"utcoffset": 0, "pid": 4242}
    out = [dict(base, type="task-sent", uuid=tid, root_id=tid, parent_id=None, name=name, args=args,
                kwargs=kwargs, retries=0, eta=None, expires=None, queue=host.split("@")[0],
                exchange="", routing_key=host.split("@")[0], hostname="gen1@client", timestamp=now)]

    def attempt(t: float, retries: int) -> float:
        out.append(dict(base, type="task-received", uuid=tid, name=name, args=args, kwargs=kwargs,
                        root_id=tid, parent_id=None, retries=retries, eta=None, expires=None,
                        hostname=host, timestamp=t + 0.001))
        out.append(dict(base, type="task-started", uuid=tid, hostname=host, timestamp=t + 0.002))
        return t + 0.002

    t = attempt(now, 0)
    roll = rng.random()
    if roll < 0.05:  # retried once, then succeeds
        out.append(dict(base, type="task-retried", uuid=tid, exception="TimeoutError('upstream')",
                        traceback=TRACEBACK, hostname=host, timestamp=t + 0.01))
        t = attempt(t + 0.02, 1)
    if roll < 0.08 or roll >= 0.98:
        if roll >= 0.98:  # reports progress
            out.append(dict(base, type="task-progress", uuid=tid, state="PROGRESS",
                            meta={"current": 5, "total": 10}, hostname=host, timestamp=t + 0.005))
        out.append(dict(base, type="task-succeeded", uuid=tid, result=repr(rng.randint(0, 10**6)),
                        runtime=0.0123, hostname=host, timestamp=t + 0.01))
    elif roll < 0.12:
        out.append(dict(base, type="task-failed", uuid=tid, exception="ValueError('card declined')",
                        traceback=TRACEBACK, hostname=host, timestamp=t + 0.01))
    else:
        out.append(dict(base, type="task-succeeded", uuid=tid, result=repr(rng.randint(0, 10**6)),
                        runtime=0.0123, hostname=host, timestamp=t + 0.01))
    return out


def generate(n: int, seed: int = 7) -> list[dict]:
    """`n` events: tasks interleaved a few at a time (as from several workers), heartbeats every 200."""
    rng = random.Random(seed)
    now, events, pending = time.time(), [], []
    while len(events) < n:
        while len(pending) < 8:
            now += 0.0005
            pending.append(task_events(now, rng))
        life = rng.choice(pending)
        events.append(life.pop(0))
        if not life:
            pending.remove(life)
        if len(events) % 200 == 0:
            host = rng.choice(HOSTS)
            events.append({"type": "worker-heartbeat", "hostname": host, "freq": 2.0, "active": 3,
                           "processed": len(events), "loadavg": [0.5, 0.4, 0.3], "sw_ident": "py-celery",
                           "sw_ver": "5.7.0", "sw_sys": "Linux", "timestamp": now, "utcoffset": 0,
                           "pid": 4242})
    for i, event in enumerate(events[:n]):
        event["clock"] = i + 1
        event["local_received"] = event["timestamp"] + 0.0002 + (i % 3) * 0.0001
    return events[:n]


def fresh(events: list[dict]) -> list[dict]:
    """Each consumer gets its own dicts and strings, as decoded from JSON by the receiver."""
    return json.loads(json.dumps(events))


def celery_sink(cap: int) -> tuple[object, Callable[[dict], object]]:
    state = State(max_tasks_in_memory=cap)
    return state, state.event


def stalk_sink(cap: int) -> tuple[object, Callable[[dict], object]]:
    """The real ingest path: the store's lock, change tracking and history dirty set included."""
    store = EventStore(max_tasks=cap)
    store._fold.dirty = {}  # as with a history db: every changed record queued for the writer
    return store, store.ingest


def history_sink(cap: int) -> tuple[object, Callable[[dict], object]]:
    """The store as a Stack runs it: notifier and SQLite history writer threads running."""
    db = Path(tempfile.mkdtemp(prefix="stalk-bench-")) / "history.sqlite3"
    store = EventStore(max_tasks=cap, history=db).start()
    RUNNING.append(store)
    return store, store.ingest


RUNNING: list[EventStore] = []
WRITTEN: list[float] = []  # history writer rows/s, per round


def rate(make: Callable, events: list[dict], cap: int) -> float:
    batch = fresh(events)
    _, feed = make(cap)
    gc.collect()
    start = time.process_time()  # CPU time of this process (all its threads): robust on a busy machine
    for event in batch:
        feed(event)
    elapsed = time.process_time() - start
    while RUNNING:
        store = RUNNING.pop()
        store.stop()
        writer = store._writer  # type: ignore[attr-defined]
        WRITTEN.append(writer.rows_written / max(writer.busy_seconds, 1e-9))
    return len(batch) / elapsed


def memory_per_task(make: Callable, events: list[dict], cap: int) -> float:
    """Bytes allocated and still held by the consumer after all events, per retained task."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    batch = fresh(events)  # decoded inside the trace: the strings a consumer keeps count
    sink, feed = make(cap)
    for event in batch:
        feed(event)
    del batch
    if isinstance(sink, EventStore):  # the notifier and the history writer empty these
        sink._fold.changed_tasks.clear()
        sink._fold.dirty = {}
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / len(sink._fold.tasks if isinstance(sink, EventStore) else sink.tasks)


def flat_memory(n: int, cap: int, passes: int) -> list[float]:
    """MB held by a store capped at `cap` tasks after each pass of `n` new events (should stay flat)."""
    store, feed = stalk_sink(cap)
    held = []
    tracemalloc.start()
    for seed in range(passes):
        batch = fresh(generate(n, seed=100 + seed))
        for event in batch:
            feed(event)
        del batch
        store._fold.changed_tasks.clear()  # type: ignore[attr-defined]
        store._fold.dirty = {}  # type: ignore[attr-defined]
        gc.collect()
        held.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    return held


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cap", type=int, default=100_000, help="max tasks kept by both")
    opts = parser.parse_args()
    events = generate(opts.events)
    tasks = len({e["uuid"] for e in events if "uuid" in e})
    print(f"event ingest: {len(events)} events, {tasks} tasks; {machine()}")
    celery_rates, stalk_rates, history_rates = [], [], []
    for _ in range(opts.rounds):
        celery_rates.append(rate(celery_sink, events, opts.cap))
        stalk_rates.append(rate(stalk_sink, events, opts.cap))
        history_rates.append(rate(history_sink, events, opts.cap))
    print(f"  celery State  events/s {summary(celery_rates)}")
    print(f"  stalk store   events/s {summary(stalk_rates)}")
    print(f"  + threads     events/s {summary(history_rates)}  (notifier + SQLite writer running)")
    print(f"  history writer rows/s {summary(WRITTEN)}  (its own thread, executemany upserts)")
    print(f"  speed ratio (stalk/celery, medians): {ratio(stalk_rates, celery_rates):.2f}x; "
          f"with history writing {ratio(history_rates, celery_rates):.2f}x")
    mem_c = [memory_per_task(celery_sink, events, opts.cap) for _ in range(3)]
    mem_s = [memory_per_task(stalk_sink, events, opts.cap) for _ in range(3)]
    print(f"  celery State  bytes/task {summary(mem_c)}")
    print(f"  stalk store   bytes/task {summary(mem_s)}")
    print(f"  memory ratio (stalk/celery, medians): {statistics.median(mem_s) / statistics.median(mem_c):.2f}")
    flat = flat_memory(opts.events, cap=5000, passes=4)
    print(f"  endless stream, cap 5000 tasks: MB held after each {opts.events} events: "
          + "  ".join(f"{mb:.2f}" for mb in flat))


if __name__ == "__main__":
    main()
