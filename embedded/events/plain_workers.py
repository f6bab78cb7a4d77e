"""Workers Stalk does not run (a plain `celery worker` on an attached broker) made as visible as its own.

- Task events: a worker started without -E sends only heartbeats, and its tasks would stay PENDING.
  Like Flower (flower/events.py: `app.control.enable_events()` every 5 s), Stalk asks for them with
  Celery's `enable_events` remote command while a worker it does not run is online: every ENABLE_EVERY
  seconds, and at once when a new one shows up. The replies say how many had them off: one line in
  the stack's log. `[events] enable_remote = false` (STALK_ENABLE_EVENTS=0) turns this off.
- Progress: `update_state(state="PROGRESS", meta=...)` in a plain worker writes only the result backend
  (Stalk's own workers also send a task-progress event, progress.py), so the tasks running on other
  workers are read there every PROGRESS_EVERY seconds (one MGET on a key-value backend such as Redis).
- Queue: Celery's task-received event names no queue; a task-sent event does, but a plain client sends
  none (task_send_sent_event is off by default). A task received without one is looked up at once (a
  late task-sent still overrides what is found): a worker that consumes one queue got it from there;
  otherwise the worker's answer to `query_task` (the requests it holds) carries the message's
  delivery_info. A task that finished before the question reached its worker is no longer held: its
  result (and a running task's PROGRESS) names the queue when the worker's app stores extended results
  (result_extended: `queue` is the delivery_info's routing key). Only when no one says is the queue
  inferred from the app's routes for the task's name, if the worker consumes that queue, and marked so
  (queue_source "route": a call's own `queue=` would make it wrong).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from celery import Celery
from celery import states as celery_states

from stalk.embedded.events.fold import ROUTED_EVENT
from stalk.embedded.events.reconcile import reconcile
from stalk.embedded.events.records import ROUTE_SOURCE, Changes
from stalk.embedded.events.store import EventStore
from stalk.embedded.foreground import FOREGROUND

ENABLE_EVERY = 5.0  # s between enable_events broadcasts (Flower's events_enable_interval)
PROGRESS_EVERY = 0.5  # s between result-backend reads of the tasks running on other workers
TICK = 0.25  # s between queue lookups
REPLY_TIMEOUT = 1.0
QUEUES_KEPT = 30.0  # s a worker's answer to active_queues is kept
ASKED_KEPT = 10_000  # task ids whose queue was asked for, not asked again
MAX_STATE = 100  # characters of a custom state read from the backend
#: thread name -> its name in the stack's thread watch
LOOPS = {"stalk-enable-events": "task-events asker", "stalk-plain-workers": "plain-workers lookup"}
STOP_HINT = "set events.enable_remote = false in stalk.toml (or STALK_ENABLE_EVENTS=0) to stop"
log = logging.getLogger(__name__)


class PlainWorkers:
    """Feeds `store` what workers Stalk does not run leave out. A store source: start()/stop().

    `own`: Stalk's workers' hostnames and the queues each consumes; `note`: a line for the stack's log."""

    def __init__(self, app: Celery, store: EventStore, own: dict[str, tuple[str, ...]], enable_remote: bool = True,
                 note: Callable[[str], None] | None = None, routes_app: Celery | None = None) -> None:
        self.app, self.store, self.own = app, store, own
        self.routes_app = routes_app or app  # the user's app: its routes and tasks (a task's own queue=)
        self.enable_remote = enable_remote
        self._note = note or (lambda _line: None)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when tasks changed: their queues are looked up at once
        self._threads: dict[str, threading.Thread] = {}  # thread name -> the one running now
        self._lock = threading.Lock()
        self._fresh: set[str] = set()  # tasks changed since the last queue lookup
        self._asked: OrderedDict[str, None] = OrderedDict()
        self._queues: dict[str, tuple[float, list[tuple[str, str | None]]]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._said: set[str] = set()  # one-time notes already written
        self.asked_workers = 0  # workers that turned their task events on when asked

    def start(self) -> None:
        self._unsubscribe = self.store.subscribe(self._changed)
        for name in LOOPS:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        target = self._enable_loop if name == "stalk-enable-events" else self._lookup_loop
        self._threads[name] = thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()

    def threads(self) -> dict[str, tuple[Callable[[], threading.Thread | None], Callable[[], None]]]:
        """For the stack's thread watch (EventStore.threads): name -> (the thread now, start a new one)."""
        return {label: (functools.partial(self._threads.get, name), functools.partial(self._spawn, name))
                for name, label in LOOPS.items()}

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for thread in list(self._threads.values()):
            thread.join(timeout=5)

    def _online(self) -> list[str]:
        return [w.hostname for w in self.store.workers() if w.online]

    def _others(self) -> list[str]:
        """Online workers Stalk does not run."""
        return [hostname for hostname in self._online() if hostname not in self.own]

    def _once(self, key: str, line: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self._note(line)

    # -- task events ----------------------------------------------------------------------------

    def _enable_loop(self) -> None:
        asked: set[str] = set()
        next_at = 0.0
        while not self._stop.wait(TICK):
            try:
                online = self._online()
                others = [hostname for hostname in online if hostname not in self.own]
                if not others:
                    continue
                if not self.enable_remote:
                    self._once("off", "[stalk] not asking workers for task events (events.enable_remote = false): "
                                      "a worker started without -E sends none, and its tasks stay PENDING here")
                    continue
                now = time.monotonic()
                if now < next_at and asked.issuperset(others):
                    continue
                FOREGROUND.step_aside()
                asked.update(others)
                next_at = now + ENABLE_EVERY
                self._enable(len(online))
            except Exception as exc:  # broker away: the next round asks again
                log.debug("enable_events failed: %r", exc)

    def _enable(self, expected: int) -> None:
        replies = self.app.control.broadcast("enable_events", reply=True, timeout=REPLY_TIMEOUT,
                                             limit=expected or None) or []
        enabled = sum(1 for reply in replies if isinstance(reply, dict) for answer in reply.values()
                      if isinstance(answer, dict) and answer.get("ok") == "task events enabled")
        if not enabled:
            return
        self.asked_workers += enabled
        self._note(f"[stalk] asked {enabled} worker(s) to send task events (enable_events); {STOP_HINT}")
        # What they ran before, unheard: tasks this stack sent stay PENDING unless the backend says more.
        reconcile(self.store.unfinished(), self.app.backend, self.store.ingest)

    # -- queue and progress ---------------------------------------------------------------------

    def _changed(self, changes: Changes) -> None:
        """The store's notifier thread: only note the ids."""
        if changes.tasks:
            with self._lock:
                self._fresh |= changes.tasks
            self._wake.set()

    def _lookup_loop(self) -> None:
        next_progress = 0.0
        while not self._stop.is_set():
            self._wake.wait(TICK)
            self._wake.clear()
            if self._stop.is_set():
                return
            FOREGROUND.step_aside()
            with self._lock:
                fresh, self._fresh = self._fresh, set()
            try:
                if fresh:
                    self._find_queues(fresh)
                now = time.monotonic()
                if now >= next_progress:
                    next_progress = now + PROGRESS_EVERY
                    self._read_progress()
            except Exception as exc:  # broker or backend away: the next round tries again
                log.debug("plain-worker lookup failed: %r", exc)

    def _find_queues(self, ids: Iterable[str]) -> None:
        by_worker: dict[str, list[str]] = {}
        for task_id in ids:
            rec = self.store.get(task_id)
            if rec is None or rec.queue is not None or rec.worker is None or task_id in self._asked:
                continue
            by_worker.setdefault(rec.worker, []).append(task_id)
        for hostname, wanted in by_worker.items():
            for task_id in wanted:
                self._asked[task_id] = None
            while len(self._asked) > ASKED_KEPT:
                self._asked.popitem(last=False)
            queues = self._queues_of(hostname)
            if len(queues) == 1:
                routes = dict.fromkeys(wanted, queues[0])
            else:
                routes = self._ask(hostname, wanted, queues)
                gone = [task_id for task_id in wanted if task_id not in routes]  # done before the question came
                routes.update(self._from_results(gone, queues))
                self._infer(hostname, [task_id for task_id in gone if task_id not in routes], queues)
            for task_id, (queue, routing_key) in routes.items():
                self._routed(task_id, queue, routing_key)

    def _routed(self, task_id: str, queue: str, routing_key: str | None, source: str | None = None) -> None:
        self.store.ingest({"type": ROUTED_EVENT, "uuid": task_id, "queue": queue, "routing_key": routing_key,
                           "source": source})

    def _from_results(self, ids: list[str], queues: list[tuple[str, str | None]]) -> dict[str, tuple[str, str]]:
        """Queues named by the results of `ids` (the worker's app stores extended results)."""
        if not ids:
            return {}
        try:
            metas = read_metas(self.app.backend, ids)
        except NotImplementedError:  # no result backend
            return {}
        return {task_id: route for task_id, meta in metas.items()
                if (route := _queue_of(meta.get("queue"), queues)) is not None}

    def _infer(self, hostname: str, ids: list[str], queues: list[tuple[str, str | None]]) -> None:
        """The last resort: where the app routes each task's name, if `hostname` consumes that queue."""
        consumed = {name for name, _key in queues}
        for task_id in ids:
            rec = self.store.get(task_id)
            queue = routed_queue(self.routes_app, rec.name) if rec is not None and rec.name else None
            if queue in consumed:
                self._routed(task_id, queue, None, ROUTE_SOURCE)

    def _queues_of(self, hostname: str) -> list[tuple[str, str | None]]:
        """(name, routing key) of the queues `hostname` consumes; [] when it does not say."""
        if hostname in self.own:
            return [(name, None) for name in self.own[hostname]]
        kept = self._queues.get(hostname)
        if kept is not None and time.monotonic() - kept[0] < QUEUES_KEPT:
            return kept[1]
        reply = self.app.control.inspect(destination=[hostname], timeout=REPLY_TIMEOUT, limit=1).active_queues()
        queues = [(q["name"], q.get("routing_key") if isinstance(q.get("routing_key"), str) else None)
                  for q in (reply or {}).get(hostname) or [] if isinstance(q, dict) and isinstance(q.get("name"), str)]
        self._queues[hostname] = (time.monotonic() if queues else 0.0, queues)
        return queues

    def _ask(self, hostname: str, ids: list[str],
             queues: list[tuple[str, str | None]]) -> dict[str, tuple[str, str | None]]:
        """The queues of `ids` from the delivery_info of the requests `hostname` still holds."""
        reply = self.app.control.inspect(destination=[hostname], timeout=REPLY_TIMEOUT, limit=1).query_task(*ids)
        held = (reply or {}).get(hostname)
        routes: dict[str, tuple[str, str | None]] = {}
        for task_id, answer in (held or {}).items() if isinstance(held, dict) else ():
            info = answer[1] if isinstance(answer, list | tuple) and len(answer) == 2 else None
            delivery = info.get("delivery_info") if isinstance(info, dict) else None
            key = delivery.get("routing_key") if isinstance(delivery, dict) else None
            route = _queue_of(key, queues)
            if task_id in ids and route is not None:
                routes[task_id] = route
        return routes

    def _read_progress(self) -> None:
        """Custom states (PROGRESS...) and their meta from the result backend, for the tasks running on
        workers Stalk does not run."""
        if not self._others():
            return
        running = self.store.running_on(lambda worker: worker not in self.own)
        if not running:
            return
        try:
            metas = read_metas(self.app.backend, [task_id for task_id, _state, _progress in running])
        except NotImplementedError:  # no result backend (DisabledBackend)
            self._once("no-backend", "[stalk] no result backend: the PROGRESS of tasks on workers Stalk does "
                                     "not run cannot be shown (--result-backend)")
            return
        for task_id, state, progress in running:
            meta = metas.get(task_id) or {}
            self._queue_from_meta(task_id, meta)
            status, result = meta.get("status"), meta.get("result")
            if not isinstance(status, str) or status in celery_states.ALL_STATES or len(status) > MAX_STATE:
                continue
            result = result if isinstance(result, dict) else None
            if status != state or result != progress:
                self.store.ingest({"type": "task-progress", "uuid": task_id, "state": status, "meta": result,
                                   "timestamp": time.time()})

    def _queue_from_meta(self, task_id: str, meta: dict) -> None:
        """A running task's extended result names its queue: over none or an inferred one."""
        rec = self.store.get(task_id)
        if rec is None or (rec.queue is not None and rec.queue_source is None) or rec.worker is None:
            return
        kept = self._queues.get(rec.worker)
        route = _queue_of(meta.get("queue"), kept[1] if kept else [])
        if route is not None:
            self._routed(task_id, *route)


def _queue_of(key: Any, queues: list[tuple[str, str | None]]) -> tuple[str, str] | None:
    """(queue, routing key) for a message's routing key: the queue bound with it, else the key itself."""
    if not isinstance(key, str) or not key:
        return None
    return next((name for name, bound in queues if bound == key), key), key


def routed_queue(app: Celery, name: str) -> str | None:
    """The queue the app's routes (or the task's own `queue`) send `name` to; None when they fail."""
    try:
        task = app.tasks.get(name)
        own = getattr(task, "queue", None)
        route = app.amqp.router.route({"queue": own} if isinstance(own, str) else {}, name, (), {}, task)
    except Exception as exc:  # a user's router raised: nothing inferred
        log.debug("routing %s failed: %r", name, exc)
        return None
    queue = route.get("queue")
    queue = getattr(queue, "name", queue)
    return queue if isinstance(queue, str) else None


def read_metas(backend: Any, ids: list[str]) -> dict[str, dict]:
    """{task id: result meta} of those of `ids` the backend has: one MGET on a key-value backend."""
    try:
        values = backend.mget([backend.get_key_for_task(task_id) for task_id in ids])
    except (AttributeError, NotImplementedError):
        return {task_id: backend.get_task_meta(task_id, cache=False) for task_id in ids[:50]}
    metas: dict[str, dict] = {}
    for task_id, value in zip(ids, values or (), strict=False):
        if value is None:
            continue
        try:
            meta = backend.decode_result(value)
        except Exception:  # not ours to read (a serializer Stalk does not accept): skipped
            continue
        if isinstance(meta, dict):
            metas[task_id] = meta
    return metas
