"""The fold: Celery event dicts -> task and worker records (no threads, no I/O; callers lock).

Hot path: one dict lookup per event to find its handler, one per task, attribute stores on a
slotted record; no objects allocated per event except the record of a new task.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from stalk.embedded.events.fold_workers import WorkerFold
from stalk.embedded.events.records import ROUTE_SOURCE, TaskRecord, WorkerRecord
from stalk.embedded.events.states import (
    AGAIN,
    ALL_STATES,
    CUSTOM_RANK,
    FAILURE,
    FINISHED,
    PENDING,
    PROGRESS,
    PURGEABLE,
    PURGED,
    RANK,
    RECEIVED,
    REJECTED,
    REQUEUED,
    REQUEUED_EVENT,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
)
from stalk.embedded.patches import untrack
from stalk.embedded.safe_text import MULTILINE, printable, printable_or_none

MAX_ATTEMPTS_KEPT = 20
MAX_INTERNED = 10_000
MAX_PURGED_UNSEEN = 20_000  # ids a purge named before their task-sent arrived, remembered (oldest go first)
PURGED_EVENT = "stalk-purged"  # Stalk's own event: a purge deleted these tasks' messages (control.queues)
ROUTED_EVENT = "stalk-routed"  # Stalk's own event: where a task came from, asked of its worker (plain_workers)
MAX_PURGE_TEXT = 200  # characters of a purge event's queue and `by` kept in the reason
THROUGHPUT_KEEP = 3600  # seconds of per-second success/failure counts


class Fold(WorkerFold):
    """Everything the store knows. `apply(event)` is the only writer for events."""

    def __init__(self, max_tasks: int = 20_000, track_dirty: bool = False) -> None:
        self.max_tasks = max_tasks
        self.tasks: dict[str, TaskRecord] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self.by_state: dict[str, dict[str, None]] = {state: {} for state in ALL_STATES}  # ordered id sets
        # eviction order; ids only, so the collector need not walk it (an OrderedDict is always tracked)
        self.finished_order: OrderedDict[str, None] = untrack(OrderedDict())  # type: ignore[assignment]
        self.changed_tasks: set[str] = set()
        self._arrivals = 0  # tasks added so far: the next one's TaskRecord.arrival
        self.changed_workers: set[str] = set()
        self.lost: list[str] = []  # ids made LOST since the store last handed them to on_lost
        self.dirty: dict[str, TaskRecord] | None = {} if track_dirty else None
        self.throughput: dict[int, list[int]] = {}
        self.failures: list[str] = []  # newest last, trimmed
        self.event_count = 0
        self.published: OrderedDict[str, tuple] = OrderedDict()  # id -> (priority, group_id) not yet seen
        #: ids a purge deleted before their task-sent was folded -> (purge time, reason); see _purged
        self.purged_unseen: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        #: Called with each event and its task's record once applied (EventStore.tap: under the store's lock)
        self.taps: list[Callable[[dict, TaskRecord | None], None]] = []
        self._strings: dict[str, str] = {}
        self.handlers: dict[str, Callable[[dict], None]] = {
            "task-sent": self._sent, "task-received": self._received, "task-started": self._started,
            "task-progress": self._progress, "task-succeeded": self._succeeded,
            "task-failed": self._failed, "task-retried": self._retried, "task-revoked": self._revoked,
            "task-rejected": self._rejected, "worker-heartbeat": self._worker,
            "worker-online": self._worker, "worker-offline": self._worker_offline,
            PURGED_EVENT: self._purged, ROUTED_EVENT: self._routed, REQUEUED_EVENT: self._requeued,
        }

    # -- entry points ---------------------------------------------------------------------------

    def apply(self, event: dict) -> None:
        self.event_count += 1
        handler = self.handlers.get(event.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            handler(event)
        elif str(event.get("type", "")).startswith("task-"):
            self._custom(event)
        if self.taps:
            rec = self.tasks.get(event.get("uuid"))  # type: ignore[arg-type]
            for tap in self.taps:
                tap(event, rec)

    def apply_many(self, events: Iterable[dict]) -> None:
        for event in events:
            self.apply(event)

    def add_loaded(self, records: Iterable[TaskRecord]) -> None:
        """Records from the history db (oldest first), not marked dirty or changed. Their failures
        count as recent ones: the Dashboard shows the last failures across a restart."""
        failed: list[TaskRecord] = []
        for record in records:
            if record.task_id in self.tasks:
                continue
            if record.state == FAILURE:
                failed.append(record)
            record.arrival = self._arrivals = self._arrivals + 1
            self.tasks[record.task_id] = untrack(record)  # type: ignore[assignment]
            self.by_state.setdefault(record.state, {})[record.task_id] = None
            if record.state in FINISHED:
                self.finished_order[record.task_id] = None
            self._evict()
        untrack(self.tasks)  # once, not per record (start-up)
        failed.sort(key=lambda r: r.finished or 0.0)
        self.failures[:0] = [r.task_id for r in failed[-100:]]

    # -- records --------------------------------------------------------------------------------

    def _task(self, event: dict) -> TaskRecord | None:
        uuid = event.get("uuid")
        if uuid is None:
            return None
        rec = self.tasks.get(uuid)
        if rec is None:
            rec = TaskRecord(uuid, arrival=self._arrivals + 1)
            untrack(rec)  # in place (it returns `rec` typed as object)
            self.tasks[uuid] = rec
            untrack(self.tasks)  # storing any object with GC support marks a dict tracked again
            self._arrivals += 1
            self.by_state[PENDING][uuid] = None
            if self.published:
                rec.priority, rec.group_id = self.published.pop(uuid, (None, None))
            if len(self.tasks) > self.max_tasks:
                self._evict()
        self.changed_tasks.add(uuid)
        if self.dirty is not None:
            self.dirty[uuid] = rec
        return rec

    @property
    def counts(self) -> dict[str, int]:
        """Tasks per state."""
        return {state: len(ids) for state, ids in self.by_state.items()}

    def ids_in(self, states: Iterable[str], at_most: int) -> list[str] | None:
        """Ids of the tasks in `states`, or None when there are more than `at_most`."""
        wanted = list(dict.fromkeys(states))
        if sum(len(self.by_state.get(state, ())) for state in wanted) > at_most:
            return None
        return [task_id for state in wanted for task_id in self.by_state.get(state, ())]

    def note_published(self, task_id: str, priority: int | None, group_id: str | None) -> None:
        """What task events do not carry, from this process's publishes (before the task-sent event)."""
        rec = self.tasks.get(task_id)
        if rec is not None:
            rec.priority, rec.group_id = priority, group_id or rec.group_id
            return
        self.published[task_id] = (priority, group_id)
        if len(self.published) > MAX_INTERNED:
            self.published.popitem(last=False)

    def lose_unfinished(self, reason: str, ts: float) -> list[str]:
        """Every task not done becomes LOST with `reason`: its queue is gone (the embedded broker's
        memory at exit). A late event of a finish still wins: LOST ranks below SUCCESS and FAILURE."""
        done = FINISHED | {REJECTED}
        ids = [task_id for state, ids in self.by_state.items() if state not in done for task_id in ids]
        for task_id in ids:
            self.lose(self.tasks[task_id], ts, reason)
        return ids

    def _intern(self, text: str | None) -> str | None:
        """One copy of a name, queue or hostname, made printable (once per distinct text)."""
        if text is None:
            return None
        found = self._strings.get(text)
        if found is None:
            if len(self._strings) > MAX_INTERNED:
                self._strings.clear()
            found = self._strings[text] = printable(text)
        return found

    def _evict(self) -> None:
        while len(self.tasks) > self.max_tasks:
            if self.finished_order:
                uuid = self.finished_order.popitem(last=False)[0]
            else:
                uuid = next(iter(self.tasks))
            rec = self.tasks.pop(uuid, None)
            if rec is not None:
                self.by_state[rec.state].pop(uuid, None)
            self.changed_tasks.discard(uuid)

    def _move(self, rec: TaskRecord, state: str, ts: float | None) -> bool:
        """Take `state` if precedence allows (see states.moves); count it; True if taken."""
        old = rec.state
        if old == state:
            if old in FINISHED:
                return False
        else:
            p_new, p_old = RANK.get(state, CUSTOM_RANK), RANK.get(old, CUSTOM_RANK)
            if old in FINISHED:
                if old == PURGED:  # finished, yet a later event says its message was not purged after all
                    if ts is None or (rec.finished is not None and ts <= rec.finished):
                        return False
                    self.finished_order.pop(rec.task_id, None)
                    rec.finished = rec.exception = None
                elif p_new >= p_old:
                    return False
            elif not (state in AGAIN or old in AGAIN or p_new <= p_old):
                return False
            rec.state = state
            self.by_state[old].pop(rec.task_id, None)
            self.by_state.setdefault(state, {})[rec.task_id] = None
            if state in FINISHED:
                self.finished_order[rec.task_id] = None
                if old in FINISHED:
                    self.finished_order.move_to_end(rec.task_id)
        if ts is not None and (rec.updated is None or ts > rec.updated):
            rec.updated = ts
        return True

    def _identity(self, rec: TaskRecord, event: dict) -> None:
        """Fields of task-sent / task-received (Celery's merge rule: always taken)."""
        get = event.get
        name = self._intern(get("name"))
        if name is not None:
            if rec.name is not None and name != rec.name:
                ts = get("timestamp")
                if ts is not None and rec.updated is not None and ts < rec.updated:
                    return  # a late event of the task this id ran as before: the record is its replacement's
                self._replaced(rec)
            rec.name = name
        args = get("args")
        if args is not None:
            rec.args = printable(args)
        kwargs = get("kwargs")
        if kwargs is not None:
            rec.kwargs = printable(kwargs)
        if rec.parent_id is None:  # a retry is sent by the task itself: not its own parent
            parent = get("parent_id")
            if parent != rec.task_id:
                rec.parent_id = parent
                root = get("root_id")
                rec.root_id = None if root == rec.task_id else root
        if rec.eta is None:
            rec.eta = get("eta")
        if rec.expires is None:
            rec.expires = get("expires")
        group = get("group_id")
        if group is not None:
            rec.group_id = group
        priority = get("priority")
        if priority is not None:
            rec.priority = priority

    def _replaced(self, rec: TaskRecord) -> None:
        """The id now names another task: Task.replace gives its replacement (a chain's last task)
        the replaced task's id, and the replaced task sends no event of its end (it raises Ignore).
        The record follows the replacement from its start and keeps the name the id was sent with
        (replaced again, or a chain run inline in eager mode, it stays the first)."""
        if rec.replaced is None:
            rec.replaced = rec.name
        rec.sent = rec.received = rec.started = rec.finished = rec.runtime = rec.retried = None
        rec.result = rec.exception = rec.traceback = rec.progress = rec.attempts = None
        rec.worker = rec.eta = rec.expires = rec.parent_id = rec.root_id = None
        rec.retries = 0
        old = rec.state
        if old != PENDING:
            self.by_state.get(old, {}).pop(rec.task_id, None)
            self.by_state[PENDING][rec.task_id] = None
            self.finished_order.pop(rec.task_id, None)
            rec.state = PENDING

    # -- task events ----------------------------------------------------------------------------

    def _sent(self, event: dict) -> None:
        rec = self._task(event)
        if rec is None:
            return
        self._identity(rec, event)
        get = event.get
        queue = self._intern(get("queue"))
        if queue:
            rec.queue, rec.queue_source = queue, None
        rec.routing_key = self._intern(get("routing_key")) or rec.routing_key
        ts = get("timestamp")
        retries = get("retries") or 0
        # `sent` is the first send: a retry's new message must not make sent > received. A task-sent is
        # stamped after its message went out, so a quick worker may stamp task-received first: a message
        # is never received before it is sent.
        first = ts if rec.received is None or retries or rec.retries or ts is None else min(ts, rec.received)
        if rec.sent is None or (first is not None and first < rec.sent):
            rec.sent = first
        if retries > rec.retries:
            rec.retries = retries
        self._move(rec, PENDING, ts)
        if self.purged_unseen:
            self._purged_before_seen(rec)

    def _purged_before_seen(self, rec: TaskRecord) -> None:
        """A purge named this task before its task-sent arrived (a client's sent events are batched; the
        purge's event is not): a message sent before the purge is the one it deleted."""
        unseen = self.purged_unseen.pop(rec.task_id, None)
        if unseen is None or rec.state != PENDING:
            return
        ts, reason = unseen
        if ts is None or rec.sent is None or rec.sent <= ts:
            self.purge(rec, ts, reason)

    def _received(self, event: dict) -> None:
        rec = self._task(event)
        if rec is None:
            return
        self._identity(rec, event)
        get = event.get
        queue = self._intern(get("queue"))  # Celery's names none; one rebuilt from an extended result does
        if queue and (rec.queue is None or rec.queue_source is not None):
            rec.queue, rec.queue_source = queue, None
            rec.routing_key = rec.routing_key or self._intern(get("routing_key"))
        ts = get("timestamp")
        retries = get("retries") or 0
        if not retries and rec.sent is not None and ts is not None and rec.sent > ts:
            rec.sent = ts  # its task-sent was stamped after the worker's task-received (see _sent)
        if retries < rec.retries:  # a late event of an earlier attempt
            if rec.received is None:
                rec.received = ts
            return
        # a retry's own task-sent may have raised rec.retries already: after RETRY it is the next attempt
        new_attempt = retries > rec.retries or (rec.state == RETRY and retries > 0)
        if new_attempt:
            rec.retries = retries
        if self._move(rec, RECEIVED, ts):
            if new_attempt:
                rec.started = rec.finished = None
        elif rec.received is not None and not new_attempt:
            return
        rec.received = ts
        rec.worker = self._intern(get("hostname"))

    def _started(self, event: dict) -> None:
        rec = self._task(event)
        if rec is None:
            return
        ts = event.get("timestamp")
        if rec.state == RETRY:
            rec.started = rec.finished = None  # a new attempt
        if self._move(rec, STARTED, ts) or rec.started is None:
            rec.started = ts
            rec.worker = self._intern(event.get("hostname"))

    def _progress(self, event: dict) -> None:
        rec = self._task(event)
        if rec is None:
            return
        meta = event.get("meta")
        state = event.get("state") or PROGRESS
        if rec.state not in FINISHED and isinstance(meta, dict):
            rec.progress = meta
        if self._move(rec, state, event.get("timestamp")) and rec.worker is None:
            rec.worker = self._intern(event.get("hostname"))

    def _routed(self, event: dict) -> None:
        """The queue of a task no task-sent event named one for; only a task the store knows. `source`
        "route": inferred from the app's routes, never over a queue a worker or backend said."""
        if event.get("uuid") not in self.tasks:
            return
        rec = self._task(event)
        source = ROUTE_SOURCE if event.get("source") == ROUTE_SOURCE else None
        if rec is None or not (rec.queue is None or (source is None and rec.queue_source is not None)):
            return
        rec.queue, rec.queue_source = self._intern(event.get("queue")), source
        rec.routing_key = rec.routing_key or self._intern(event.get("routing_key"))

    def _custom(self, event: dict) -> None:
        """task-<anything else>: a custom state, ranked like PROGRESS."""
        rec = self._task(event)
        if rec is not None:
            self._move(rec, str(event["type"])[5:].upper(), event.get("timestamp"))

    def _finish(self, rec: TaskRecord, state: str, event: dict) -> bool:
        ts = event.get("timestamp")
        if not self._move(rec, state, ts):
            return False
        rec.finished = ts
        host = event.get("hostname")
        if host is not None and state != REVOKED:
            rec.worker = self._intern(host)
        if ts is not None and state in (SUCCESS, FAILURE):
            self._count_done(int(ts), state == SUCCESS)
        return True

    def _count_done(self, second: int, ok: bool) -> None:
        bucket = self.throughput.get(second)
        if bucket is None:
            bucket = self.throughput[second] = [0, 0]
            if len(self.throughput) > THROUGHPUT_KEEP + 60:
                for old in [s for s in self.throughput if s < second - THROUGHPUT_KEEP]:
                    del self.throughput[old]
        bucket[0 if ok else 1] += 1

    def _succeeded(self, event: dict) -> None:
        rec = self._task(event)
        if rec is not None and self._finish(rec, SUCCESS, event):
            rec.result = printable_or_none(event.get("result"))
            rec.runtime = event.get("runtime")
            rec.exception = rec.traceback = None

    def _failed(self, event: dict) -> None:
        rec = self._task(event)
        if rec is not None and self._finish(rec, FAILURE, event):
            rec.exception = printable_or_none(event.get("exception"))
            rec.traceback = printable_or_none(event.get("traceback"), MULTILINE)
            if rec.started is not None and rec.finished is not None:
                rec.runtime = rec.finished - rec.started
            failures = self.failures
            failures.append(rec.task_id)
            if len(failures) > 200:
                del failures[:100]

    def _retried(self, event: dict) -> None:
        rec = self._task(event)
        if rec is None:
            return
        ts = event.get("timestamp")
        exception = printable_or_none(event.get("exception"))
        attempts = rec.attempts
        if attempts is None:
            attempts = rec.attempts = []
        if len(attempts) < MAX_ATTEMPTS_KEPT:  # kept even when late (it may come after the next attempt)
            attempts.append((ts, self._intern(event.get("hostname")), exception))
        if self._move(rec, RETRY, ts):
            rec.retried = ts
            rec.exception = exception
            rec.traceback = printable_or_none(event.get("traceback"), MULTILINE)

    def _revoked(self, event: dict) -> None:
        rec = self._task(event)
        if rec is not None and self._finish(rec, REVOKED, event):
            rec.exception = "terminated" if event.get("terminated") else (
                "expired" if event.get("expired") else "revoked")

    def _rejected(self, event: dict) -> None:
        rec = self._task(event)
        if rec is not None:
            self._move(rec, REJECTED, event.get("timestamp"))

    def _requeued(self, event: dict) -> None:
        """Stalk put the task's message back in its queue (its worker died holding it): REQUEUED with the
        reason, from LOST too (a running task of a dead worker runs again). A finish is never undone."""
        rec = self._task(event)
        if rec is None or rec.state in (SUCCESS, FAILURE, REVOKED, PURGED):
            return
        ts, reason = event.get("timestamp"), printable_or_none(event.get("reason"))
        old = rec.state
        self.by_state.get(old, {}).pop(rec.task_id, None)
        self.by_state.setdefault(REQUEUED, {})[rec.task_id] = None
        self.finished_order.pop(rec.task_id, None)
        rec.state, rec.exception, rec.finished, rec.started = REQUEUED, reason, None, None
        attempts = rec.attempts if rec.attempts is not None else []
        if len(attempts) < MAX_ATTEMPTS_KEPT:
            attempts.append((ts, self._intern(event.get("hostname")), reason))
        rec.attempts = attempts
        if ts is not None and (rec.updated is None or ts > rec.updated):
            rec.updated = ts
        self.changed_tasks.add(rec.task_id)
        if self.dirty is not None:
            self.dirty[rec.task_id] = rec

    # -- purges ---------------------------------------------------------------------------------

    def _purged(self, event: dict) -> None:
        """A purge of `queue` deleted the messages of `ids` (a redis broker names them). `ids` None: the
        broker does not say which (RabbitMQ), so the tasks seen sent to the queue and not received by a
        worker since are taken for them, and the reason says so. Only tasks the store knows change."""
        get = event.get
        ts, queue = get("timestamp"), _printable(get("queue"))
        if not isinstance(ts, int | float):
            ts = None
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts is not None else "an unknown time"
        reason = f"purged from queue {queue} at {at} by {_printable(get('by'))}"
        ids = get("ids")
        if isinstance(ids, list):
            named = [task_id for task_id in ids if isinstance(task_id, str)]
            found = [self.tasks.get(task_id) for task_id in named]
            records = [rec for rec in found if rec is not None and rec.state in PURGEABLE]
            self._remember_unseen([i for i, rec in zip(named, found, strict=True) if rec is None], ts, reason)
        else:
            reason += (" (inferred: the broker does not name the messages it purges; the task was sent to "
                       "this queue and not received by a worker since)")
            records = [rec for rec in self.waiting_in(queue) if ts is None or (
                (rec.retried if rec.state == RETRY else rec.sent) or 0.0) <= ts]
        for rec in records:
            self.purge(rec, ts, reason)

    def _remember_unseen(self, ids: list[str], ts: float | None, reason: str) -> None:
        unseen = self.purged_unseen
        for task_id in ids:
            unseen[task_id] = (ts, reason)
        while len(unseen) > MAX_PURGED_UNSEEN:
            unseen.popitem(last=False)

    def waiting_in(self, queue: str) -> list[TaskRecord]:
        """Tasks seen sent to `queue` (or retried there) and not received by a worker since."""
        tasks = self.tasks
        return [rec for state in (PENDING, RETRY) for rec in map(tasks.__getitem__, self.by_state.get(state, ()))
                if rec.queue == queue or (rec.queue is None and rec.routing_key == queue)]

    def purge(self, rec: TaskRecord, ts: float | None, reason: str) -> None:
        """`rec` becomes PURGED for `reason` (changed, and written to history)."""
        task_id, old = rec.task_id, rec.state
        if old != PURGED:
            self.by_state.get(old, {}).pop(task_id, None)
            self.by_state[PURGED][task_id] = None
            rec.state = PURGED
        self.finished_order.pop(task_id, None)
        self.finished_order[task_id] = None
        rec.finished, rec.exception, rec.traceback = ts, reason, None
        if ts is not None and (rec.updated is None or ts > rec.updated):
            rec.updated = ts
        self.changed_tasks.add(task_id)
        if self.dirty is not None:
            self.dirty[task_id] = rec


def _printable(value: object) -> str:
    """A purge event's text field for a reason shown on terminals: printable, bounded."""
    return printable("?" if value is None else str(value)[:MAX_PURGE_TEXT])
