"""EventStore: the live, bounded task/worker store the panel reads (see notes in the package doc)."""

from __future__ import annotations

import contextlib
import functools
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from itertools import filterfalse, islice
from pathlib import Path
from typing import Any, Protocol

from stalk.embedded.events.filters import PACED_FROM, Filter, in_states, walk_budget
from stalk.embedded.events.fold import Fold
from stalk.embedded.events.history import HistoryWriter, load_recent
from stalk.embedded.events.paced import paced, wanted_while
from stalk.embedded.events.queries import (
    SORT_KEYS,
    first_sorted,
    sort_records,
    timeline,
    wanted_states,
)
from stalk.embedded.events.records import ARRIVAL, Changes, TaskEvent, TaskRecord, WorkerRecord
from stalk.embedded.events.search_texts import SearchTexts
from stalk.embedded.events.sort_index import Remembered, SortIndex
from stalk.embedded.events.states import FAILURE, FINISHED, PENDING, RECEIVED, REJECTED, RETRY
from stalk.embedded.foreground import FOREGROUND
from stalk.embedded.paths import set_aside

NOT_RUNNING = FINISHED | {PENDING, RECEIVED, REJECTED, RETRY}  # any other state: on a worker, running
NOTIFY_EVERY = 0.1  # s between batches to subscribers
EXPIRE_EVERY = 0.5  # s between heartbeat-expiry checks
DEFAULT_MAX_TASKS = 20_000
INDEX_KEPT = 60.0  # s the search texts or a sort index are kept after the last query that read them
SEARCH = "search"
WALK_PER_ROW = 8  # a searched, sorted view walks its sort index this far per row wanted (8: ~3 ms for 500 rows),
# then puts all the matches in the index's order instead (their entries sorted in C): the matches of
# a needle in a task's name lie together in a sort by name, maybe 40,000 ids in (a walk of 30 ms)


def index_limit(size: int, limit: int | None) -> int:
    """Up to how many tasks a state filter reads the state's index rather than walking the store. A
    walk for the newest `limit` of a state holding `count` tasks reads about limit * size / count
    records and stops; the index reads and sorts all `count`: the index wins below sqrt(limit * size)
    (halved: sorting costs more per record). Without a limit a walk reads everything."""
    if limit is None:
        return size // 20
    return min(size // 20, int(math.sqrt(limit * size) / 2))


class Index(Protocol):
    """What the store keeps current for its queries: SearchTexts, SortIndex."""

    def update(self, tasks: dict[str, TaskRecord], changed: Iterable[str]) -> None: ...
    def stale(self, size: int) -> bool: ...
    def prune(self, tasks: dict[str, TaskRecord]) -> None: ...


class StoreBusy(Exception):
    """The store's lock was not free within the `wait` given to `query`."""


class EventStore:
    """Folds Celery events into records; hands subscribers one `Changes` batch per ~0.1 s.

    Feed it with `ingest(event)` (the receiver thread, or eager-mode signals); read it from any
    thread. `start()` runs the notifier (and the history writer when `history` is a path)."""

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS, history: Path | None = None,
                 workers: Iterable[tuple[str, str, int]] = (), log: Callable[[str], None] | None = None) -> None:
        self._fold = Fold(max_tasks=max_tasks, track_dirty=history is not None)
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Changes], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = log or (lambda _msg: None)
        self._history_path = history
        self._writer: HistoryWriter | None = None
        self._sources: list = []  # receiver / signal hooks: stopped with the store
        self._no_expiry: set[str] = set()
        self._resumed = 0.0  # monotonic time this process resumed from a pause
        self._indexes: dict[str, Index] = {}  # SEARCH: SearchTexts; a sort key: its SortIndex
        self._used: dict[str, float] = {}  # index name -> monotonic time a query last read it
        self._pinned: set[str] = set()  # indexes kept even when no query reads them
        self._building: dict[str, set[str]] = {}  # index name -> ids changed while it is built
        self._sort_wanted: str | None = None  # a sort key a query found no index for
        #: Called (notifier thread, no lock held) with the ids of tasks that became LOST: a worker killed
        #: after it acknowledged a task may never have sent its task-succeeded event (Celery buffers
        #: task events in the worker's loop), so the stack looks them up in the result backend.
        self.on_lost: Callable[[list[str]], None] | None = None
        for hostname, pool, concurrency in workers:
            self.declare_worker(hostname, pool, concurrency)

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> EventStore:
        if self._history_path is not None:
            self._load_history()
            self._writer = HistoryWriter(self._history_path, self._drain_dirty, on_error=self._log)
            self._writer.start()
        self._start_notifier()
        return self

    def _start_notifier(self) -> None:
        self._thread = threading.Thread(target=self._notify_loop, name="stalk-events-notify", daemon=True)
        self._thread.start()

    def threads(self) -> dict[str, tuple[Callable[[], threading.Thread | None], Callable[[], None]]]:
        """The store's background threads for a watchdog (embedded/thread_watch.py): name -> (the thread
        now, start a new one). Sources that keep one thread (`thread`, `start()`) are listed too."""
        found: dict[str, tuple[Callable[[], threading.Thread | None], Callable[[], None]]] = {
            "events notifier": (lambda: self._thread, self._start_notifier)}
        writer = self._writer
        if writer is not None:
            found["history writer"] = (lambda: writer.thread, writer.start)
        for source in self._sources:
            name = getattr(source, "thread_name", None)
            if callable(getattr(source, "threads", None)):  # a source with several threads
                found.update(source.threads())
            elif name is not None:
                found[name] = (functools.partial(getattr, source, "thread"), source.start)
        return found

    def attach(self, source: object) -> None:
        """A feeding source (with start()/stop()) that lives as long as the store."""
        self._sources.append(source)
        source.start()  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Stop the sources, deliver the last batch, flush history."""
        for source in self._sources:
            with contextlib.suppress(Exception):
                source.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._notify()
        if self._writer is not None:
            self._writer.stop()

    def wait_stopped(self, timeout: float) -> bool:
        """Wait up to `timeout` s; True once the store is stopping (for threads that retry)."""
        return self._stop.wait(timeout)

    def _load_history(self) -> None:
        path: Path = self._history_path  # type: ignore[assignment]
        try:
            records = load_recent(path, self._fold.max_tasks)
        except Exception as exc:  # a corrupt db must not stop the stack: kept aside, history restarts
            message = f"[stalk] task history not loaded: {path}: {exc}"
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                with contextlib.suppress(OSError):
                    message += f"; moved to {set_aside(path).name}, starting a new one"
            self._log(message)
            return
        with self._lock:
            self._fold.add_loaded(records)

    # -- feeding --------------------------------------------------------------------------------

    def ingest(self, event: dict) -> None:
        """Apply one Celery event dict (as the receiver decodes it)."""
        FOREGROUND.step_aside()
        with self._lock:
            self._fold.apply(event)

    def ingest_many(self, events: Iterable[dict]) -> None:
        FOREGROUND.step_aside()
        with self._lock:
            self._fold.apply_many(events)

    def note_published(self, task_id: str, priority: int | None, group_id: str | None) -> None:
        with self._lock:
            self._fold.note_published(task_id, priority, group_id)

    def unfinished(self, limit: int = 2000) -> list[str]:
        """Ids of the most recent tasks not finished yet (what a reconnect should look up), then those this
        process published that no event mentioned yet (all their events may have gone out unheard)."""
        with self._lock:
            records = list(self._fold.tasks.values())
            unheard = list(self._fold.published)
        out = [r.task_id for r in reversed(records) if r.state not in FINISHED]
        return (out + unheard[::-1])[:limit]

    def running_on(self, elsewhere: Callable[[str | None], bool], limit: int = 500) -> list[tuple[str, str, Any]]:
        """(id, state, progress) of the tasks running (STARTED, PROGRESS or a custom state) on a worker
        `elsewhere` accepts, up to `limit` (the last to enter their state)."""
        with self._lock:
            tasks, by_state = self._fold.tasks, self._fold.by_state
            ids = [task_id for state, ids in by_state.items() if state not in NOT_RUNNING for task_id in ids]
            records = [tasks[task_id] for task_id in ids[-limit:] if task_id in tasks]
            return [(r.task_id, r.state, r.progress) for r in records if elsewhere(r.worker)]

    def lose_unfinished(self, reason: str) -> int:
        """Mark every unfinished task LOST with `reason` (written to history at stop); how many."""
        with self._lock:
            return len(self._fold.lose_unfinished(reason, time.time()))

    def declare_worker(self, hostname: str, pool: str | None, concurrency: int | None) -> None:
        """What events do not say (pool, concurrency), from the stack's worker specs."""
        with self._lock:
            rec = self._fold.worker(hostname)
            rec.pool, rec.concurrency = pool, concurrency
        if pool == "solo":  # a solo worker sends no heartbeat while it runs a task
            self._no_expiry.add(hostname)

    def _drain_dirty(self) -> list[TaskRecord]:
        with self._lock:
            dirty = self._fold.dirty
            if not dirty:
                return []
            self._fold.dirty = {}
        return list(dirty.values())

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(self, cb: Callable[[Changes], None]) -> Callable[[], None]:
        self._subscribers.append(cb)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(cb)

        return unsubscribe

    def tap(self, cb: Callable[[dict, TaskRecord | None], None]) -> Callable[[], None]:
        """`cb(event, record)` for every event applied, with the record of its task (None for a worker's),
        on the ingesting thread under the store's lock: it must be quick and must not raise (metrics).
        Returns the call that removes it."""
        with self._lock:
            self._fold.taps = [*self._fold.taps, cb]

        def remove() -> None:
            with self._lock:
                self._fold.taps = [t for t in self._fold.taps if t is not cb]

        return remove

    def _notify_loop(self) -> None:
        next_expiry = last = 0.0
        while not self._stop.wait(NOTIFY_EVERY):
            now = time.monotonic()
            if last and now - last > 2.0:  # this process was paused (suspend, SIGSTOP): so were its ears
                self._resumed = now
            last = now
            if now >= next_expiry:
                next_expiry = now + EXPIRE_EVERY
                self._expire()
                self._drop_unread()
            FOREGROUND.step_aside()
            self._notify()
            self._hand_over_lost()
            wanted = self._sort_wanted
            if wanted is not None:
                self._sort_wanted = None
                self.prepare_sort(wanted)

    def _notify(self) -> None:
        with self._lock:
            fold = self._fold
            if not (fold.changed_tasks or fold.changed_workers):
                return
            changes = Changes(frozenset(fold.changed_tasks), frozenset(fold.changed_workers))
            fold.changed_tasks.clear()
            fold.changed_workers.clear()
            for building in self._building.values():
                building |= changes.tasks
            self._keep_indexes(changes.tasks)
        for cb in list(self._subscribers):
            try:
                cb(changes)
            except Exception as exc:  # one bad listener must not starve the others
                self._log(f"[stalk] event subscriber failed: {type(exc).__name__}: {exc}")

    def _hand_over_lost(self) -> None:
        with self._lock:
            lost, self._fold.lost = self._fold.lost, []
        if lost and self.on_lost is not None:
            try:
                self.on_lost(lost)
            except Exception as exc:
                self._log(f"[stalk] looking up lost tasks failed: {type(exc).__name__}: {exc}")

    def _expire(self) -> None:
        """Workers silent past their heartbeat window go offline (their running tasks LOST), but only
        while every receiver has been connected long enough to have heard them."""
        since = [getattr(s, "connected_since", 0.0) for s in self._sources]
        if any(s is None for s in since):
            return
        heard_for = time.monotonic() - max([*since, self._resumed])
        with self._lock:
            window = max((w.freq * 2 + 1 for w in self._fold.workers.values()), default=5.0)
            if heard_for < window:
                return
            self._fold.expire_workers(time.time(), skip=self._no_expiry.__contains__)

    # -- queries --------------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord | None:
        return self._fold.tasks.get(task_id)

    def query(self, state: str | None = None, name: str | None = None, queue: str | None = None,
              worker: str | None = None, search: str | None = None, sort_key: str = "received",
              reverse: bool = True, limit: int | None = 500, wait: float | None = None,
              wanted: Callable[[], bool] | None = None) -> list[TaskRecord]:
        """Records by filter and sort. `wait`: a quick read for a UI thread: at most this long for the
        store's lock, and no index built or whole store sorted for it; else StoreBusy (the caller asks
        again from a thread). `wanted`: asked between slices of a long walk; once false the query
        stops (raises Unwanted) and frees the store's lock for the query that replaced it."""
        flt = Filter(state, name, queue, worker)
        needle = search.lower() if search else None
        if needle is not None and SEARCH not in self._indexes:
            if wait is not None:
                raise StoreBusy("the search texts are not built yet")
            self.prepare_search()
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise StoreBusy(f"the event store stayed busy for {wait} s")
        try:
            with wanted_while(wanted, pace=wait is None):
                found, in_order = self._select(flt, state, needle, sort_key, reverse, limit, quick=wait is not None)
        finally:
            self._lock.release()
        if in_order:
            return found
        chosen = list(flt.passing(found))  # all of them, in arrival order
        if wait is not None:  # the UI thread's: a sort in C, not a heap the other threads preempt
            return sort_records(chosen, sort_key, reverse)[:limit]
        return first_sorted(chosen, sort_key, reverse, limit)

    def _select(self, flt: Filter, state: str | None, needle: str | None, sort_key: str, reverse: bool,
                limit: int | None, quick: bool) -> tuple[list[TaskRecord], bool]:
        """Under the lock: (the answer, True), or (every candidate in arrival order, False) for a sort of
        the whole store outside the lock."""
        tasks = self._fold.tasks
        index = self._kept(sort_key) if sort_key in SORT_KEYS and sort_key != "received" else None
        if index is not None and flt.states and not needle:
            return self._in_states(flt, flt.states, index, reverse, limit), True
        # no sort index (or received order): a rare state's tasks are sorted, a common one's walked
        few = None if not state or needle else self._fold.ids_in(
            wanted_states(state), index_limit(len(tasks), limit if sort_key == "received" else None))
        if few is not None:  # a rare state: its index, not a walk of the whole store
            records = sorted((tasks[task_id] for task_id in few), key=ARRIVAL)
            return sort_records(list(flt.passing(records)), sort_key, reverse)[:limit], True
        texts: SearchTexts | None = self._kept(SEARCH) if needle is not None else None
        if needle is not None and texts is None:  # dropped since prepare_search: a long pause
            texts = self._indexes[SEARCH] = SearchTexts(tasks.values())
        if sort_key == "received":  # the live view: walk from the newest (or oldest), stop at `limit`
            walk: Iterable[TaskRecord] = (
                filter(None, map(tasks.get, texts.ids(needle, reverse, tasks))) if texts and needle
                else paced(reversed(tasks.values()) if reverse else tasks.values()))
            found = flt.first(walk, limit)
            if reverse:
                found.reverse()
            return sort_records(found, sort_key, reverse), True
        if index is None:
            self._sort_wanted = sort_key  # the notifier builds it; meanwhile a sort of the whole store
            if quick:
                raise StoreBusy(f"no {sort_key} sort index yet")
            walk = filter(None, map(tasks.get, texts.ids(needle, False, tasks))) if texts and needle else tasks.values()
            return list(walk), False
        ids = index.ids(reverse)
        if texts is not None and needle is not None:
            remembered = index.matching(needle) if limit is not None else None
            if remembered is not None and limit is not None:  # the next key typed, or the same search refreshed
                return self._refined(remembered, index, texts, needle, flt, reverse, limit), True
            cap = index_limit(len(tasks), None)
            scan = texts.ids(needle, False, tasks)
            matched = list(islice(scan, cap + 1))
            if len(matched) > cap and limit is not None:  # many: at the index's head, or further on
                head = flt.first(filter(None, map(tasks.get, texts.among(islice(ids, limit * WALK_PER_ROW), needle))),
                                 limit)
                if len(head) == limit:
                    return head, True
                matched.extend(scan)  # the rest of the same scan: it is remembered when complete
                return flt.first(filter(None, map(tasks.get, index.in_order(matched, reverse, needle))), limit), True
            if len(matched) <= cap:  # few: sorted outside the lock
                return list(filter(None, map(tasks.get, matched))), False
            ids = texts.among(ids, needle)
        return flt.first(filter(None, map(tasks.get, ids)), limit), True

    def _in_states(self, flt: Filter, states: set[str], index: SortIndex, reverse: bool,
                   limit: int | None) -> list[TaskRecord]:
        """A state filter's rows in a sort index's order (see filters.py): the index walked while that
        is cheaper than sorting the states' tasks, else those sorted by their entries (in C)."""
        tasks, by_state = self._fold.tasks, self._fold.by_state
        if index.sort_key == "state":  # the states' runs of the index, nothing else read
            return flt.first(filter(None, map(tasks.get, index.valued(states, reverse))), limit)
        count = sum(len(by_state.get(s, ())) for s in states)
        budget = walk_budget(count, len(tasks), limit)
        if budget is not None:
            ids = index.ids(reverse)
            found = flt.first(filter(None, map(tasks.get, in_states(by_state, states, islice(ids, budget)))), limit)
            if len(found) == limit or next(ids, None) is None:  # complete
                return found
        ids_in = [task_id for s in states for task_id in by_state.get(s, ())]
        read = paced(ids_in) if len(ids_in) > PACED_FROM else ids_in
        if not flt.only_state:
            read = [r.task_id for r in flt.passing(filter(None, map(tasks.get, read)))]
        return list(map(tasks.__getitem__, index.first_of(read, reverse, limit)))

    def _refined(self, remembered: Remembered, index: SortIndex, texts: SearchTexts, needle: str,
                 flt: Filter, reverse: bool, limit: int) -> list[TaskRecord]:
        """A search's matches from the ones remembered for a needle it contains, already in the index's
        order: re-tested (in C) until `limit` pass, and the ids changed since placed among them. A name
        fragment typed while sorted by name: 25-40 ms per key to find and sort 20,000 matches -> ~1 ms."""
        tasks, since = self._fold.tasks, remembered.since
        walk = reversed(remembered.ids) if reverse else iter(remembered.ids)
        still = filterfalse(since.__contains__, texts.among(paced(walk), needle))  # unchanged: placed right
        head = [rec.task_id for rec in flt.first(filter(None, map(tasks.get, still)), limit)]
        changed = flt.first(filter(None, map(tasks.get, texts.among(iter(since), needle))), None)
        return list(filter(None, map(tasks.get, index.merged(head, [r.task_id for r in changed], reverse, limit))))

    # -- kept indexes: the search texts, the sort indexes -----------------------------------------

    def prepare_search(self, keep: bool = False) -> None:
        """Build the search texts now, e.g. when a search box opens (~50 ms and ~15 MB for 100,000 tasks).
        `keep`: never free them (a view where a search may start at any key: a search typed while they
        are built waits for the build, 100-200 ms while 1,000 events/s arrive)."""
        if keep:
            self._pinned.add(SEARCH)
        self._build(SEARCH, SearchTexts)

    def prepare_sort(self, sort_key: str, keep: bool = False) -> None:
        """Build `sort_key`'s index now (~50 ms and ~12 MB for 100,000 tasks). `keep`: never free it,
        read or not (a view that may sort by any key at a keystroke: the first sort by a key otherwise
        waits for its build, 100-200 ms while 1,000 events/s arrive)."""
        if sort_key in SORT_KEYS and sort_key != "received":
            if keep:
                self._pinned.add(sort_key)
            self._build(sort_key, lambda records: SortIndex(sort_key, SORT_KEYS[sort_key], records))

    def _build(self, name: str, make: Callable[[list[TaskRecord]], Index]) -> None:
        """Built outside the lock, so ingestion and live queries go on; the tasks that changed
        meanwhile are re-read under it. The copy is of the records (the collector skips them), not of
        (id, record) pairs: 100,000 pairs it would walk at every collection of the young generations
        until the build ends (one took 37 ms, every thread stopped)."""
        FOREGROUND.step_aside()
        with self._lock:
            self._used[name] = time.monotonic()
            if name in self._indexes or name in self._building:
                return
            records = list(self._fold.tasks.values())
            self._building[name] = set(self._fold.changed_tasks)
        try:
            index = make(records)
        except BaseException:
            with self._lock:
                del self._building[name]
            raise
        with self._lock:  # one section: a notifier batch between catch-up and publishing would be lost
            index.update(self._fold.tasks, self._building.pop(name) | self._fold.changed_tasks)
            self._indexes[name] = index
            self._used[name] = time.monotonic()

    def _kept(self, name: str) -> Any:
        """An index brought up to date with changes not notified yet (caller holds the lock)."""
        index = self._indexes.get(name)
        if index is not None:
            index.update(self._fold.tasks, self._fold.changed_tasks)
            self._used[name] = time.monotonic()
        return index

    def _keep_indexes(self, changed: Iterable[str]) -> None:
        """Indexes follow the changed tasks (caller holds the lock)."""
        tasks = self._fold.tasks
        for index in self._indexes.values():
            index.update(tasks, changed)
            if index.stale(len(tasks)):
                index.prune(tasks)

    def _drop_unread(self) -> None:
        """Indexes no query read for a while are freed."""
        now = time.monotonic()
        with self._lock:
            for name in [n for n in self._indexes
                         if n not in self._pinned and now - self._used.get(n, 0.0) > INDEX_KEPT]:
                del self._indexes[name]

    def events_of(self, task_id: str) -> list[TaskEvent]:
        rec = self._fold.tasks.get(task_id)
        return [] if rec is None else timeline(rec)

    def children_of(self, task_id: str) -> list[TaskRecord]:
        with self._lock:
            records = list(self._fold.tasks.values())
        return [r for r in records if r.parent_id == task_id]

    def workers(self) -> list[WorkerRecord]:
        with self._lock:
            return sorted(self._fold.workers.values(), key=lambda w: w.hostname)

    def counts_by_state(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self._fold.counts.items() if v}

    def __len__(self) -> int:
        return len(self._fold.tasks)

    def throughput(self, seconds: int) -> list[dict]:
        now = int(time.time())
        with self._lock:
            buckets = dict(self._fold.throughput)
        out = []
        for second in range(now - seconds + 1, now + 1):
            ok, failed = buckets.get(second, (0, 0))
            out.append({"succeeded": ok, "failed": failed})
        return out

    def recent_failures(self, n: int) -> list[TaskRecord]:
        with self._lock:
            ids = list(self._fold.failures)
            tasks = self._fold.tasks
            out, seen = [], set()
            for task_id in reversed(ids):
                rec = tasks.get(task_id)
                if rec is not None and rec.state == FAILURE and task_id not in seen:
                    seen.add(task_id)
                    out.append(rec)
                    if len(out) >= n:
                        break
        return out

    def wait_for(self, task_id: str, states: Iterable[str] | str | None = None,
                 timeout: float = 10.0) -> TaskRecord | None:
        """The record once it is in one of `states` (default: finished); None on timeout."""
        wanted = FINISHED if states is None else ({states} if isinstance(states, str) else set(states))
        deadline = time.monotonic() + timeout
        while True:
            rec = self._fold.tasks.get(task_id)
            if rec is not None and rec.state in wanted:
                return rec
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
