"""How a Stack gets its event store: history in the data dir, fed by the broker or by eager signals."""

from __future__ import annotations

import logging
import threading
from typing import Any

from stalk.embedded.children import node_name
from stalk.embedded.events.eager import EagerFeed
from stalk.embedded.events.plain_workers import PlainWorkers
from stalk.embedded.events.publish import PublishNotes
from stalk.embedded.events.receiver import EventReceiver
from stalk.embedded.events.reconcile import reconcile, unknown_results
from stalk.embedded.events.states import FINISHED
from stalk.embedded.events.store import EventStore

log = logging.getLogger("stalk.events")
#: Waits (s) between further lookups of the tasks unfinished at a (re)connect: a task that ran while
#: the receiver was away (its events unheard) may store its result only after the reconnect, e.g.
#: while its worker was still reconnecting to the backend.
LATE_RESULTS = (3.0, 10.0, 30.0)


class CatchUp:
    """Run after each (re)connect of the receiver (on its own thread): what finished while no one
    listened (broker restart, Stalk down) is taken from the result backend."""

    def __init__(self, store: EventStore, backend: Any, late: tuple[float, ...] = LATE_RESULTS) -> None:
        self.store, self.backend, self.late = store, backend, late
        self._started = False

    def __call__(self) -> None:
        store = self.store
        ids = store.unfinished()
        if not self._started:  # at start: results the history had not written yet when Stalk last died
            self._started = True
            ids += unknown_results(self.backend, lambda task_id: store.get(task_id) is not None)
        reconcile(ids, self.backend, store.ingest)
        for delay in self.late:
            ids = [task_id for task_id in ids if not self._finished(task_id)]
            if not ids or store.wait_stopped(delay):
                return
            reconcile(ids, self.backend, store.ingest)

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
    store.attach(EventReceiver(stack.app, store.ingest, log=log.info, on_connect=CatchUp(store, stack.app.backend)))
    # Workers Stalk does not run: their task events asked for, their progress and queues looked up.
    own = {node_name(spec): spec.queues for spec in stack.worker_specs}
    store.attach(PlainWorkers(stack.app, store, own, stack.config.events.enable_remote, note=stack.note))

    def look_up_lost(ids: list[str]) -> None:  # finished before the worker died, unheard: the backend knows
        threading.Thread(target=reconcile, args=(ids, stack.app.backend, store.ingest),
                         name="stalk-reconcile-lost", daemon=True).start()

    store.on_lost = look_up_lost
    return store
