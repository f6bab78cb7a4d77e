"""How a Stack gets its event store: history in the data dir, fed by the broker or by eager signals."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from stalk.embedded.children import node_name
from stalk.embedded.events.eager import EagerFeed
from stalk.embedded.events.plain_workers import PlainWorkers
from stalk.embedded.events.publish import PublishNotes
from stalk.embedded.events.queued import queued_events
from stalk.embedded.events.receiver import EventReceiver
from stalk.embedded.events.reconcile import reconcile, unknown_results
from stalk.embedded.events.states import FINISHED
from stalk.embedded.events.store import EventStore

log = logging.getLogger("stalk.events")
#: Waits (s) between further lookups of the tasks unfinished at a (re)connect: a task that ran while
#: the receiver was away (its events unheard) may store its result only after the reconnect, e.g.
#: while its worker was still reconnecting to the backend.
LATE_RESULTS = (3.0, 10.0, 30.0)
STUCK_EVERY = 60.0  # s: while connected, the unfinished tasks are looked up in the result backend this often


class CatchUp:
    """Run after each (re)connect of the receiver (on its own thread): what happened while no one
    listened (broker restart, Stalk down) is taken from the result backend (finished tasks, those the
    store never heard of included) and from the broker's queues (tasks still waiting: queued.py). Then,
    until the next connect, the tasks left unfinished are looked up again every `every` s: a final event
    lost in a reconnect's gap does not leave a task running in history for good."""

    def __init__(self, store: EventStore, backend: Any, late: tuple[float, ...] = LATE_RESULTS,
                 app: Celery | None = None, queues: tuple[str, ...] = (), every: float = STUCK_EVERY) -> None:
        self.store, self.backend, self.late = store, backend, late
        self.app, self.queues, self.every = app, queues, every
        self._connects = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._connects += 1
            connect = self._connects
        store = self.store
        if self.app is not None:
            store.ingest_many(queued_events(self.app, self._known, self.queues))
        ids = store.unfinished() + self._unknown()
        reconcile(ids, self.backend, store.ingest)
        for delay in self.late:  # results stored after the reconnect (a worker still reconnecting)
            if store.wait_stopped(delay) or connect != self._connects:
                return
            ids = [task_id for task_id in ids if not self._finished(task_id)] + self._unknown()
            reconcile(ids, self.backend, store.ingest)
        while self.every and not store.wait_stopped(self.every) and connect == self._connects:
            reconcile(store.unfinished(), self.backend, store.ingest)

    def _known(self, task_id: str) -> bool:
        return self.store.get(task_id) is not None

    def _unknown(self) -> list[str]:
        """Results the store has no record of: finished unheard while the receiver was away, or after the
        history's last write before Stalk died (SIGKILL, power loss)."""
        return unknown_results(self.backend, self._known)

    def _finished(self, task_id: str) -> bool:
        rec = self.store.get(task_id)
        return rec is not None and rec.state in FINISHED


def start_store(stack: Any) -> EventStore:
    """A started store for `stack` (embedded.Stack): receiver thread, or signal hooks in eager mode."""
    workers = [(node_name(spec), spec.pool, spec.concurrency) for spec in stack.worker_specs]
    store = EventStore(history=stack.paths.history_db, workers=workers, log=log.warning)
    store.start()
    if stack.mode == "eager":
        store.attach(EagerFeed(stack.app, store.ingest))
        return store
    store.attach(PublishNotes(store.note_published))
    queues = tuple(dict.fromkeys(q for spec in stack.worker_specs for q in spec.queues))
    catch_up = CatchUp(store, stack.app.backend, app=stack.app, queues=queues)
    store.attach(EventReceiver(stack.app, store.ingest, log=log.info, on_connect=catch_up))
    # Workers Stalk does not run: their task events asked for, their progress and queues looked up.
    own = {node_name(spec): spec.queues for spec in stack.worker_specs}
    store.attach(PlainWorkers(stack.app, store, own, stack.config.events.enable_remote, note=stack.note,
                              routes_app=stack.user_app))

    def look_up_lost(ids: list[str]) -> None:  # finished before the worker died, unheard: the backend knows
        threading.Thread(target=reconcile, args=(ids, stack.app.backend, store.ingest),
                         name="stalk-reconcile-lost", daemon=True).start()

    store.on_lost = look_up_lost
    return store
