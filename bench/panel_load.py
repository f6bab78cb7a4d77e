"""Panel under load: key press to repaint on the Tasks screen, and RSS over time.

The stack runs as its own process, as `stalk` runs it (issue #21): a child process this bench starts
(`--serve`) runs a real eager Stack serving its API on its Unix socket, its EventStore swapped for one
holding --tasks tasks (default 100,000) and fed --rate realistic events/s (default 1,000) through
`store.ingest` by a feeder thread, as the receiver thread feeds it live (the notifier's batches, the
history writer and the API's change hub all run). The real app (panel.app.make_app) runs headless in
this process, attached through `RemoteStack` (every read a request over the socket, changes from the
/changes stream), so the panel's RSS is this process's. `--in-process`: the old way, the panel on the
eager Stack in this same process (no API), for comparison. After the keys, with the feed still on, the
Tasks screen's page (`RemoteEvents.query`: 500 rows, filtered by state, sorted; request, JSON decode and
records) is timed back to back for --api-seconds: its p50/p99 (target p99 <= 10 ms), with what the stack
process spent on it (store.query, the page's encoding) and its garbage collector's pauses.

Keys are sent as the terminal driver sends them: cursor moves, `/` and search text, state filter `f`,
sort `o`, clear, screen switches `1`/`2`. Latency is from the key reaching the app to the end of the
first screen update that shows its effect (the compositor update rendered to terminal bytes, which the
headless driver would otherwise skip). The reference is the same key script on an idle store of a few
tasks (its own stack child, attached the same way). Targets (issue #21): p99 <= 35 ms under load, p50 at
most 1.5x the reference's, the panel's RSS flat.

"Effect" per key: cursor keys: the table's cursor action ran; `/` and enter: the focus moved; `1`/`2`:
the mode's screen is current; search text, `f`, `o`, escape: rows of a query with the new filter,
started after the key, are in the table. Also printed: store.query and TaskTable.show times, screen
update times, event-loop lag and full garbage collections (they stop every thread), and for the
re-query keys where the time goes (waiting for the query, the query, the table, the paint).

Both phases apply the panel's own garbage-collector settings (panel/gc_tuning.py, as `stalk` does);
--no-gc-tuning measures without them (and without the start-up freeze), --no-foreground without the
background threads stepping aside for keys (embedded/foreground.py), --gc-threshold tries other
thresholds, --switch-interval another sys.setswitchinterval; --profile writes a cProfile of the UI thread.

Run: .venv/bin/python bench/panel_load.py [--duration 60] [--tasks 100000] [--rate 1000] [--in-process]
     [--api-seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TZ", "UTC")

import stalk.panel  # noqa: E402, F401, I001  (first: it sets Textual's frame rate as `stalk` does)
import psutil  # noqa: E402
from _common import machine  # noqa: E402
from event_ingest import generate  # noqa: E402
from textual import constants, events  # noqa: E402
from textual.screen import Screen  # noqa: E402
from textual.widgets import Input  # noqa: E402

from stalk.embedded import Stack  # noqa: E402
from stalk.embedded.config import load_config  # noqa: E402
from stalk.embedded.events import EventStore  # noqa: E402
from stalk.embedded.foreground import FOREGROUND  # noqa: E402
from stalk.panel import gc_tuning  # noqa: E402
from stalk.panel import app as panel_app  # noqa: E402
from stalk.panel.app import make_app  # noqa: E402
from stalk.panel.screens_registry import MODE_SCREENS  # noqa: E402
from stalk.panel.widgets.task_table import TaskTable  # noqa: E402

SIZE = (120, 36)
KEY_TIMEOUT = 5.0  # s: a key whose effect is not on screen by then counts as this long
IDLE_TASKS = 60
PAUSE = 0.15  # s between a key's repaint and the next key (a fast typist)


# -- the store and its feed ---------------------------------------------------------------------


def prefilled(n_tasks: int, history: Path | None, seed: int = 1) -> EventStore:
    """A store holding `n_tasks` finished-or-running tasks (fed by events, as a live store is)."""
    store = EventStore(max_tasks=n_tasks, history=history)
    made = 0
    while len(store) < n_tasks or made < n_tasks * 5:  # ~5.3 events per task
        batch = generate(min(50_000, n_tasks * 6), seed=seed * 1000 + made)
        shift = time.time() - 3600 - batch[0]["timestamp"] + made * 0.0005
        for event in batch:  # an hour of history, oldest first
            event["timestamp"] += shift
        store.ingest_many(batch)
        made += len(batch)
    return store


class Feeder(threading.Thread):
    """Ingests `rate` events/s, one `store.ingest` each, as the receiver thread does."""

    def __init__(self, store: EventStore, rate: int) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        self.store, self.rate = store, rate
        self.sent = 0
        self._halt = threading.Event()

    def run(self) -> None:
        queue: collections.deque[dict] = collections.deque()
        start, seed = time.monotonic(), 10_000
        while not self._halt.wait(0.01):
            due = int((time.monotonic() - start) * self.rate) - self.sent
            while due > 0:
                if not queue:
                    seed += 1
                    queue.extend(generate(self.rate, seed=seed))  # one second of events
                event = queue.popleft()
                event["timestamp"] = event["local_received"] = time.time()
                self.store.ingest(event)
                self.sent += 1
                due -= 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class RssSampler(threading.Thread):
    def __init__(self, every: float, pid: int | None = None) -> None:
        super().__init__(name="bench-rss", daemon=True)
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._halt = threading.Event()
        self._proc = psutil.Process(pid)

    def run(self) -> None:
        start = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - start, self._proc.memory_info().rss / 1e6))
            if self._halt.wait(self.every):
                break

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, self._proc.memory_info().rss / 1e6))


# -- the stack as its own process ---------------------------------------------------------------


def serve_stack(tasks: int, rate: int) -> None:
    """The child (`--serve`): an eager Stack serving its API, its store swapped for one of `tasks` tasks
    (its changes on the API's change hub, as the stack's own store's); the feed starts at "feed" on stdin
    and stops at "stop" (or EOF); protocol lines on stdout start with "BENCH "."""
    with tempfile.TemporaryDirectory(prefix="stalk-bench-stack-") as tmp:
        data_dir = Path(tmp) / "data"
        config = load_config({"data_dir": str(data_dir), "broker": {"mode": "eager"}, "beat": False},
                             environ={"STALK_CONFIG": ""})
        stack = Stack(config).start(wait=True, timeout=60)
        own = stack.events
        store = prefilled(tasks, Path(tmp) / "history.sqlite3" if tasks > IDLE_TASKS else None)
        ids = [r.task_id for r in store.query(limit=None)]
        needles = sorted({r.name.split(".")[-1][:4] for r in store.query(limit=IDLE_TASKS)})
        if tasks > IDLE_TASKS:
            needles = [ids[len(ids) * k // 5][:5] for k in range(1, 5)]  # id fragments: rare matches
        del ids
        store.start()
        stack.events = store
        assert stack.api is not None
        served = time_route(store)
        unsubscribe = store.subscribe(stack.api._task_changes)
        feeder = Feeder(store, rate) if rate else None
        from stalk.embedded.status_file import read_status

        while read_status(stack.paths.state) is None:  # the API's address, for clients
            time.sleep(0.02)
        _say({"data_dir": str(data_dir), "tasks": len(store), "needles": needles})
        try:
            for command in sys.stdin:
                if command.strip() == "feed":
                    if feeder is not None:
                        feeder.start()
                    _say({"feeding": feeder is not None})
                elif command.strip() == "stop":
                    break
        finally:
            if feeder is not None and feeder.is_alive():
                feeder.stop()
            _say({"sent": feeder.sent if feeder else 0, "served": served})
            unsubscribe()
            stack.events = own
            store.stop()
            stack.stop()


def time_route(store: EventStore) -> dict[str, list[float]]:
    """ms per store.query (only the API's routes query it here) and per page encoding (routes/tasks.py
    fast_json), as the stack process spends them."""
    from stalk.embedded.service.routes import tasks as route

    served: dict[str, list[float]] = {"query": [], "encode": []}

    def timed(name: str, call: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                served[name].append((time.perf_counter() - start) * 1000)
        return run

    store.query = timed("query", store.query)  # type: ignore[method-assign]
    route.fast_json = timed("encode", route.fast_json)  # type: ignore[assignment]
    served["gc"], started = [], [0.0]

    def on_gc(phase: str, info: dict) -> None:  # every collection, any generation: all threads wait
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            served["gc"].append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(on_gc)
    return served


def _say(message: dict) -> None:
    print("BENCH " + json.dumps(message), flush=True)


class StackChild:
    """This bench's stack process (`serve_stack`): its data dir, ids to search, its feed."""

    def __init__(self, tasks: int, rate: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", "--tasks", str(tasks), "--rate", str(rate)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._hear()
        self.data_dir = Path(ready["data_dir"])
        self.tasks: int = ready["tasks"]
        self.needles: list[str] = ready["needles"]
        self.sent = 0
        self.served: dict[str, list[float]] = {}  # the stack process's ms per store.query, per page encoding
        self._feeding = False

    def _hear(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("BENCH "):
                return json.loads(line[6:])
        raise RuntimeError(f"the stack process ended (exit {self.proc.wait()})")

    def _tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def start(self) -> None:  # a Feeder's interface: run_phase starts and stops it
        self._tell("feed")
        self._feeding = bool(self._hear().get("feeding"))

    def stop(self) -> None:
        """Stop the feed and the stack process; `sent`: the events it ingested."""
        if self.proc.poll() is None:
            self._tell("stop")
            last = self._hear()
            self.sent, self.served = int(last.get("sent", 0)), last.get("served") or {}
            self.proc.wait(60)


API_STATES = [None, "success", "failure", "started", "success,failure"]
API_SORTS = ["received", "name", "state", "runtime", "worker", "queue"]


def api_latency(events: Any, seconds: float) -> list[tuple[float, tuple]]:
    """(ms, (state, sort, reverse)) per Tasks-screen page over the API (RemoteEvents.query: 500 rows, a
    state filter, a sort), back to back for `seconds`, cycling states x sort keys x direction."""
    combos = [(st, k, r) for st in API_STATES for k in API_SORTS for r in (True, False)]
    out: list[tuple[float, tuple]] = []
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        state, sort, reverse = combos[i % len(combos)]
        t = time.perf_counter()
        events.query(state=state, sort_key=sort, reverse=reverse, limit=500)
        out.append(((time.perf_counter() - t) * 1000, combos[i % len(combos)]))
        i += 1
    return out


# -- probes: what the app did, and when ---------------------------------------------------------


@dataclass
class Probe:
    """Timestamps (perf_counter) the wrapped app parts record; `done` checks a key's effect."""

    queries: list[tuple[float, float, tuple]] = field(default_factory=list)  # start, end, kwargs
    shows: list[tuple[float, float]] = field(default_factory=list)  # start, end of TaskTable.show
    cursor_moves: list[float] = field(default_factory=list)
    paints: int = 0
    frames: list[float] = field(default_factory=list)  # ms per screen update (layout + render)
    frame_cpu: list[float] = field(default_factory=list)  # ms of the UI thread's CPU per screen update
    lags: list[float] = field(default_factory=list)  # ms the event loop was late for a 5 ms sleep
    gc_pauses: list[float] = field(default_factory=list)  # ms per full (generation 2) collection
    stage: tuple[float, float, float, float] | None = None
    stages: list[tuple[str, list[float]]] = field(default_factory=list)  # per re-query key: ms per step
    pending: tuple[float, str, Callable[[], bool]] | None = None
    results: list[tuple[str, float]] = field(default_factory=list)  # kind, ms
    spans: list[tuple[float, float]] = field(default_factory=list)  # per result: key sent, answered
    frame_spans: list[tuple[float, float]] = field(default_factory=list)  # screen updates: start, end
    gc_spans: list[tuple[float, float]] = field(default_factory=list)  # full collections: start, end
    waiter: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, kind: str, effect: Callable[[], bool]) -> float:
        t0 = time.perf_counter()
        self.waiter.clear()
        self.pending = (t0, kind, effect)
        return t0

    def painted(self) -> None:
        """Called at the end of every screen update: is the pending key's effect on screen now?"""
        self.paints += 1
        if self.pending is not None and self.pending[2]():
            t0, kind, _ = self.pending
            now = time.perf_counter()
            self.results.append((kind, (now - t0) * 1000))
            self.spans.append((t0, now))
            if self.stage is not None:  # key -> query start -> end -> table.show start -> end -> painted
                marks = (t0, *self.stage, now)
                self.stages.append((kind, [(b - a) * 1000 for a, b in zip(marks, marks[1:], strict=False)]))
                self.stage = None
            self.pending = None
            self.waiter.set()

    def timed_out(self) -> None:
        if self.pending is not None:
            self.results.append((self.pending[1], KEY_TIMEOUT * 1000))
            self.spans.append((self.pending[0], self.pending[0] + KEY_TIMEOUT))
            self.pending = None


def instrument_app(app: Any, probe: Probe) -> None:
    """Every screen update also renders to terminal bytes (headless skips it), then tells the probe."""
    display = app._display

    def timed_display(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None:
            render = getattr(renderable, "render_segments", None)
            if render is not None:
                render(app.console)
            probe.painted()

    app._display = timed_display


def instrument_frames(probe: Probe) -> Callable[[], None]:
    """Time every screen update (Screen._on_timer_update: layout, render) and every garbage
    collection of the oldest generation (it stops all threads); returns an undo."""
    original = Screen._on_timer_update
    started = [0.0]

    def timed(screen: Screen) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        original(screen)
        end = time.perf_counter()
        probe.frames.append((end - start) * 1000)
        probe.frame_cpu.append((time.thread_time() - cpu) * 1000)
        probe.frame_spans.append((start, end))

    def on_gc(phase: str, info: dict) -> None:
        if info.get("generation") == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                probe.gc_pauses.append((time.perf_counter() - started[0]) * 1000)
                probe.gc_spans.append((started[0], time.perf_counter()))

    Screen._on_timer_update = timed  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)

    def undo() -> None:
        Screen._on_timer_update = original  # type: ignore[method-assign]
        gc.callbacks.remove(on_gc)

    return undo


async def watch_lag(probe: Probe) -> None:
    """How late the event loop wakes from 5 ms sleeps: time it spent blocked on something."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(0.005)
        probe.lags.append(max(0.0, (time.perf_counter() - start) * 1000 - 5))


def instrument_store(store: EventStore, probe: Probe) -> None:
    query = store.query

    def timed_query(*args: Any, **kwargs: Any) -> list:
        start = time.perf_counter()
        out = query(*args, **kwargs)
        probe.queries.append((start, time.perf_counter(), tuple(sorted(kwargs.items()))))
        return out

    store.query = timed_query  # type: ignore[method-assign]


def instrument_table(table: TaskTable, probe: Probe) -> None:
    show = table.show

    def timed_show(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        show(*args, **kwargs)
        probe.shows.append((start, time.perf_counter()))

    table.show = timed_show  # type: ignore[method-assign]
    for name in ("action_cursor_down", "action_cursor_up"):
        action = getattr(table, name)

        def moved(action: Callable = action) -> None:
            action()
            probe.cursor_moves.append(time.perf_counter())

        setattr(table, name, moved)


# -- the key script -----------------------------------------------------------------------------


def effect_of(kind: str, app: Any, probe: Probe, t0_ref: list[float], arg: Any = None) -> Callable[[], bool]:
    """What must be on screen for a key of `kind` to count as answered."""
    if kind == "cursor":
        return lambda: bool(probe.cursor_moves) and probe.cursor_moves[-1] >= t0_ref[0]
    if kind == "focus":
        return lambda: isinstance(app.focused, arg)
    if kind == "mode":
        return lambda: isinstance(app.screen, MODE_SCREENS[arg]) and app.screen.is_current
    before = probe.queries[-1][2] if probe.queries else None

    def requeried() -> bool:  # rows of a query with the new filter/sort, started after the key, shown
        for start, end, kwargs in reversed(probe.queries):
            if start < t0_ref[0]:
                return False
            if kwargs != before:  # the newest such query may not be on screen yet: an older one may
                shown = [(s, e) for s, e in probe.shows[-8:] if s >= end]
                if shown:
                    probe.stage = (start, end, *shown[0])
                    return True
        return False

    return requeried


def script(needles: list[str]) -> list[tuple[str, str, Any]]:
    """One round of keys: (key, kind, arg). Each round moves the sort one step further."""
    needle = random.choice(needles)
    keys: list[tuple[str, str, Any]] = [("down", "cursor", None)] * 3
    keys += [("slash", "focus", Input)] + [(c, "search", None) for c in needle]
    keys += [("enter", "focus", TaskTable), ("escape", "filter", None)]
    keys += [("f", "filter", None), ("f", "filter", None), ("escape", "filter", None), ("o", "sort", None)]
    keys += [("1", "mode", "dashboard"), ("2", "mode", "tasks")]
    return keys


async def send_key(app: Any, key: str) -> None:
    char = key if len(key) == 1 else {"slash": "/"}.get(key)
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def drive(app: Any, pilot: Any, probe: Probe, seconds: float, needles: list[str]) -> None:
    """Press keys for `seconds`, each after the previous one's repaint (plus a short pause)."""
    deadline = time.perf_counter() + seconds
    t0_ref = [0.0]
    while time.perf_counter() < deadline:
        for key, kind, arg in script(needles):
            if time.perf_counter() >= deadline:
                return
            table = app.screen.query_one(TaskTable) if isinstance(app.screen, MODE_SCREENS["tasks"]) else None
            if key == "down" and table is not None and table.cursor_row >= table.row_count - 1:
                key = "up"
            measure = kind if kind in ("cursor", "focus", "mode") else "requery"
            effect = effect_of(measure, app, probe, t0_ref, arg)
            t0_ref[0] = probe.expect(kind, effect)
            await send_key(app, key)
            try:
                await asyncio.wait_for(probe.waiter.wait(), KEY_TIMEOUT)
            except TimeoutError:
                probe.timed_out()
                t0 = t0_ref[0]
                recent = [f"{(a - t0) * 1000:+.0f}..{(b - t0) * 1000:+.0f} ms {dict(k).get('search')!r}/"
                          f"{dict(k).get('state')!r}/{dict(k).get('sort_key')!r}" for a, b, k in [q for q in probe.queries if q[1] >= t0][:5]]
                shows = [f"{(a - t0) * 1000:+.0f}" for a, _b in probe.shows[-3:]]
                print(f"  no repaint with the effect of {key!r} ({kind}) within {KEY_TIMEOUT:.0f} s; focused: "
                      f"{type(app.focused).__name__}; queries (start..end vs key, search/state/sort): "
                      f"{'; '.join(recent)}; shows at {', '.join(shows)} ms")
            await asyncio.sleep(PAUSE)


async def run_phase(stack: Any, seconds: float, needles: list[str], feeder: Feeder | StackChild | None = None,
                    rss_every: float = 5.0, profile: str | None = None,
                    api_seconds: float = 0.0) -> tuple[Probe, RssSampler | None, float, list[tuple[float, tuple]]]:
    """The key script for `seconds` on a panel on `stack` (a Stack, or a RemoteStack: then its events are
    timed as the store's); `feeder` is started once the Tasks screen shows. With `api_seconds`, the API's
    page latency is timed after the keys, the feed still on."""
    instrument_store(stack.events, probe := Probe())
    undo_frames = instrument_frames(probe)  # before the app: screens bind their timers at mount
    app = make_app(stack.config, stack=stack, probe_broker=False)
    instrument_app(app, probe)
    sampler = RssSampler(rss_every) if feeder is not None else None
    api_ms: list[tuple[float, tuple]] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("2")
        await pilot.pause()
        instrument_table(app.screen.query_one(TaskTable), probe)
        fed_from = time.monotonic()
        if feeder is not None:
            feeder.start()
        await asyncio.sleep(1.0)  # first rows and a few event batches on screen
        probe.results.clear()
        probe.spans.clear()
        probe.frame_spans.clear()
        probe.gc_spans.clear()
        probe.frames.clear()
        probe.frame_cpu.clear()
        probe.gc_pauses.clear()
        lag = asyncio.create_task(watch_lag(probe))
        gc.collect()
        if sampler is not None:
            sampler.start()
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()  # the UI thread (the event loop) only
        try:
            await drive(app, pilot, probe, seconds, needles)
            if api_seconds:  # the page alone, from a thread as the screen's worker asks (the app idle)
                api_ms = await asyncio.to_thread(api_latency, stack.events, api_seconds)
        finally:
            lag.cancel()
            undo_frames()
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)  # type: ignore[arg-type]
            if sampler is not None:
                sampler.stop()
            if feeder is not None:
                feeder.stop()
            fed_for = time.monotonic() - fed_from
        for note in list(app._notifications):
            if note.severity == "error":
                print(f"  app error notice: {note.title or ''} {note.message}"[:300])
        screen = (app._screen_stacks.get("tasks") or [None])[0]
        if screen is not None and probe.results and max(ms for _k, ms in probe.results) >= KEY_TIMEOUT * 1000:
            print(f"  tasks screen state: inflight={getattr(screen, '_inflight', '?')} "
                  f"dirty={getattr(screen, '_dirty', '?')} filter={getattr(screen, 'filter', '?')}")
        app.runtime.detach()
    return probe, sampler, feeder.sent / fed_for if feeder else 0.0, api_ms


# -- report -------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<22} (none)"
    return (f"  {label:<22} n {len(values):4d}  p50 {percentile(values, 50):7.1f}  p99 {percentile(values, 99):7.1f}"
            f"  max {max(values):7.1f} ms")


def overlap(span: tuple[float, float], others: list[tuple[float, float]]) -> float:
    """ms of `others` inside `span`."""
    return sum(max(0.0, min(b, span[1]) - max(a, span[0])) for a, b in others) * 1000


def slowest(probe: Probe, n: int = 6) -> None:
    """The slowest keys, and what ran while they waited: full collections, screen updates, queries."""
    queries = [(a, b) for a, b, _k in probe.queries]
    ranked = sorted(zip(probe.results, probe.spans, strict=True), key=lambda x: -x[0][1])[:n]
    print("  slowest keys (ms; of which full gc / screen updates / store queries in other threads):")
    for (kind, ms), span in ranked:
        print(f"    {kind:<7} {ms:6.1f}  gc {overlap(span, probe.gc_spans):5.1f}  frames "
              f"{overlap(span, probe.frame_spans):5.1f}  queries {overlap(span, queries):5.1f}")


def report(name: str, probe: Probe) -> dict[str, float]:
    print(f" {name}")
    all_ms = [ms for _k, ms in probe.results]
    print(line("key -> repaint, all", all_ms))
    for kind in ("cursor", "focus", "search", "filter", "sort", "mode"):
        print(line(kind, [ms for k, ms in probe.results if k == kind]))
    queries = [(e - s) * 1000 for s, e, _k in probe.queries]
    shows = [(e - s) * 1000 for s, e in probe.shows]
    print(line("store.query (thread)", queries))
    print(line("TaskTable.show (UI)", shows))
    print(line("screen update (UI)", probe.frames))
    print(line("  its CPU time (UI)", probe.frame_cpu))  # the rest of its time: waiting for the GIL
    print(line("event loop lag", probe.lags))
    print(line("full gc pause", probe.gc_pauses))
    steps = ("wait for query", "query", "wait for show", "show", "wait for paint")
    for kind in ("search", "filter", "sort"):
        stages = [s for k, s in probe.stages if k == kind]
        if stages:
            print(f"  {kind} keys, median ms per step: " + ", ".join(
                f"{name} {statistics.median(s[i] for s in stages):.1f}" for i, name in enumerate(steps)))
    slowest(probe)
    ranked = sorted(probe.queries, key=lambda q: q[0] - q[1])[:4]
    print("  slowest store queries (ms, filter): " + "; ".join(
        f"{(b - a) * 1000:.1f} {dict(k).get('search')!r}/{dict(k).get('state')!r}/{dict(k).get('sort_key')!r}"
        f"{'' if dict(k).get('wait') is None else ' quick'}" for a, b, k in ranked))
    timeouts = sum(1 for _k, ms in probe.results if ms >= KEY_TIMEOUT * 1000)
    if timeouts:
        print(f"  {timeouts} key(s) not answered within {KEY_TIMEOUT:.0f} s (counted as {KEY_TIMEOUT:.0f} s)")
    if not all_ms:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    return {"p50": percentile(all_ms, 50), "p99": percentile(all_ms, 99), "max": max(all_ms)}


def tune(opts: argparse.Namespace) -> None:
    """This process runs as `stalk`'s panel does: tuned, start-up objects frozen (both phases)."""
    if not opts.no_gc_tuning:
        gc_tuning.tune()
        gc_tuning.settle()
    if opts.gc_threshold:
        gc.set_threshold(*opts.gc_threshold)
    if opts.switch_interval:
        sys.setswitchinterval(opts.switch_interval)
    if opts.no_foreground:
        panel_app.KEY_HOLD = 0.0


# reference, loaded, RSS, events/s fed, API pages, the stack process's own ms (store.query, encoding)
Phases = tuple[Probe, Probe, RssSampler, float, list[tuple[float, tuple]], dict[str, list[float]]]


def attached(opts: argparse.Namespace, reference_s: float) -> Phases:
    """The panel in this process on RemoteStacks: a stack child per phase."""
    from stalk.embedded.service import RemoteStack

    tune(opts)
    idle = StackChild(IDLE_TASKS, 0)
    try:
        remote = RemoteStack.on_data_dir(idle.data_dir)
        needles = list(idle.needles)
        ref, _, _, _ = asyncio.run(run_phase(remote, reference_s, needles))
        remote.close()
    finally:
        idle.stop()
    gc.collect()  # the reference phase's app is garbage now: `stalk` runs one app, not two
    t = time.perf_counter()
    child = StackChild(opts.tasks, opts.rate)
    try:
        print(f"  stack process ready in {time.perf_counter() - t:.1f} s: {child.tasks} tasks")
        remote = RemoteStack.on_data_dir(child.data_dir)
        loaded, sampler, fed, api_ms = asyncio.run(
            run_phase(remote, opts.duration, needles + child.needles, feeder=child, rss_every=opts.rss_every,
                      profile=opts.profile, api_seconds=opts.api_seconds))
        remote.close()
    finally:
        child.stop()
    assert sampler is not None
    return ref, loaded, sampler, fed, api_ms, child.served


def in_process(opts: argparse.Namespace, reference_s: float) -> Phases:
    """The panel on an eager Stack in this same process (the design before the API)."""
    with tempfile.TemporaryDirectory(prefix="stalk-bench-panel-") as tmp:
        config = load_config({"data_dir": str(Path(tmp) / "data"), "broker": {"mode": "eager"}, "beat": False},
                             environ={"STALK_CONFIG": ""})
        stack = Stack(config).start(wait=True, timeout=60)
        own_store = stack.events
        try:
            tune(opts)
            idle = prefilled(IDLE_TASKS, None).start()
            needles = sorted({r.name.split(".")[-1][:4] for r in idle.query(limit=None)})
            stack.events = idle
            ref, _, _, _ = asyncio.run(run_phase(stack, reference_s, needles))
            idle.stop()
            gc.collect()  # the reference phase's app is garbage now: `stalk` runs one app, not two
            t = time.perf_counter()
            store = prefilled(opts.tasks, Path(tmp) / "history.sqlite3")
            ids = [r.task_id for r in store.query(limit=None)]
            needles += [ids[len(ids) * k // 5][:5] for k in range(1, 5)]  # id fragments: rare matches
            del ids  # 100,000 strings a full collection would walk: not part of the panel
            store.start()
            print(f"  store filled in {time.perf_counter() - t:.1f} s: {len(store)} tasks")
            stack.events = store
            loaded, sampler, fed, _ = asyncio.run(
                run_phase(stack, opts.duration, needles, feeder=Feeder(store, opts.rate) if opts.rate else None,
                          rss_every=opts.rss_every, profile=opts.profile))
            store.stop()
        finally:
            stack.events = own_store
            stack.stop()
    assert sampler is not None
    return ref, loaded, sampler, fed, [], {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of keys under load")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the store")
    parser.add_argument("--rate", type=int, default=1000, help="events/s fed during the run")
    parser.add_argument("--in-process", action="store_true", help="the panel on a Stack in this process (no API)")
    parser.add_argument("--api-seconds", type=float, default=10.0, help="seconds of API page requests after the keys")
    parser.add_argument("--reference", type=float, default=None, help="seconds on the idle store")
    parser.add_argument("--rss-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the UI thread under load into PATH")
    parser.add_argument("--no-gc-tuning", action="store_true", help="without panel/gc_tuning.py's settings")
    parser.add_argument("--gc-threshold", type=int, nargs=3, metavar="N", help="gc.set_threshold(...) instead")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval(...) instead of the panel's")
    parser.add_argument("--no-foreground", action="store_true",
                        help="background threads do not step aside for keys (embedded/foreground.py)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds, 5,000 tasks")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the stack child
    opts = parser.parse_args()
    if opts.serve:
        return serve_stack(opts.tasks, opts.rate)
    if opts.quick:
        opts.duration, opts.tasks, opts.rss_every = min(opts.duration, 3.0), min(opts.tasks, 5000), 1.0
        opts.api_seconds = min(opts.api_seconds, 2.0)
    reference_s = opts.reference if opts.reference is not None else max(2.0, min(15.0, opts.duration / 4))
    random.seed(3)
    how = "in this process (--in-process)" if opts.in_process else "in its own process, the panel attached over the API"
    print(f"panel under load: {opts.tasks} tasks, {opts.rate} events/s, {opts.duration:.0f} s; the stack {how}; "
          f"Textual at {constants.MAX_FPS} frames/s; {machine()}; load average {os.getloadavg()[0]:.1f}")
    aside = FOREGROUND.waited
    ref, loaded, sampler, fed, api_ms, served = (in_process if opts.in_process else attached)(opts, reference_s)
    aside = FOREGROUND.waited - aside
    r = report(f"reference: idle store ({IDLE_TASKS} tasks, no events), {reference_s:.0f} s", ref)
    big = report(f"under load: {opts.tasks} tasks, {fed:.0f} events/s fed", loaded)
    if opts.in_process:
        print(f"  background threads stepped aside for keys: {aside:.1f} s in all (embedded/foreground.py)")
    rss = [mb for _t, mb in sampler.samples]
    print(f"  panel RSS MB every {opts.rss_every:.0f} s: " + " ".join(f"{mb:.0f}" for mb in rss))
    print(f"  RSS start {rss[0]:.1f} MB  end {rss[-1]:.1f} MB  growth {rss[-1] - rss[0]:+.1f} MB"
          f"  (max {max(rss):.1f})")
    # The first rounds build the search texts once (at the first `/`; they stay while they are read);
    # the sort indexes are built when the Tasks screen first shows and kept.
    warm_from = max(10.0, opts.duration / 2)
    warm = [mb for t, mb in sampler.samples if t >= warm_from]
    if len(warm) >= 2:
        print(f"  RSS after the first {warm_from:.0f} s (indexes built): {warm[0]:.1f} -> {warm[-1]:.1f} MB "
              f"({warm[-1] - warm[0]:+.1f})")
    p50_ratio = big["p50"] / max(r["p50"], 1e-9)
    print(f"  ratio under load / idle: p50 {p50_ratio:.2f}x  p99 {big['p99'] / max(r['p99'], 1e-9):.2f}x")
    api = ""
    if api_ms:
        page_ms = [ms for ms, _c in api_ms]
        api_p50, api_p99 = percentile(page_ms, 50), percentile(page_ms, 99)
        print(line("API page (500 rows)", page_ms) + "  (RemoteEvents.query, back to back, the feed on)")
        by_combo: dict[tuple, list[float]] = collections.defaultdict(list)
        for ms, combo in api_ms:
            by_combo[combo].append(ms)
        worst = sorted(by_combo.items(), key=lambda kv: -statistics.median(kv[1]))[:4]
        print("    slowest pages (state/sort/reverse: median ms): " + "; ".join(
            f"{c[0]}/{c[1]}/{'desc' if c[2] else 'asc'}: {statistics.median(v):.1f}" for c, v in worst))
        for name, what in (("query", "store.query"), ("encode", "encoding"), ("gc", "gc pause")):
            print(line(f"  in the stack: {what}", served.get(name, [])) + "  (the loaded phase)")
        fine = [ms for ms, c in api_ms if statistics.median(by_combo[c]) < 50]
        if len(fine) < len(page_ms):
            print(f"    without the pages whose median is over 50 ms: p50 {percentile(fine, 50):.1f}  "
                  f"p99 {percentile(fine, 99):.1f} ms")
        api = f"api_p50_ms={api_p50:.1f} api_p99_ms={api_p99:.1f} {'OK' if api_p99 <= 10 else 'OVER'} "
    print(f"RESULT p50_ms={big['p50']:.1f} p99_ms={big['p99']:.1f} max_ms={big['max']:.1f} "
          f"rss_start_mb={rss[0]:.1f} rss_end_mb={rss[-1]:.1f} p50_ratio={p50_ratio:.2f} {api}"
          f"target p99<=35 {'OK' if big['p99'] <= 35 else 'OVER'} p50<=1.5x {'OK' if p50_ratio <= 1.5 else 'OVER'}")


if __name__ == "__main__":
    main()
