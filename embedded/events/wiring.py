"""How a Stack gets its event store: history in the data dir, fed by the broker or by eager signals."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..children import node_name
from .eager import EagerFeed
from .publish import PublishNotes
from .receiver import EventReceiver
from .reconcile import reconcile, unknown_results
from .store import EventStore

log = logging.getLogger("stalk.events")


def start_store(stack: Any) -> EventStore:
    """A started store for `stack` (embedded.Stack): receiver thread, or signal hooks in eager mode."""
    workers = [(node_name(spec), spec.pool, spec.concurrency) for spec in stack.worker_specs]
    store = EventStore(history=stack.paths.history_db, workers=workers, log=log.warning)
    store.start()
    if stack.mode == "eager":
        store.attach(EagerFeed(stack.app, store.ingest))
    else:
        store.attach(PublishNotes(store.note_published))

        started = False

        def catch_up() -> None:  # what finished while no one listened (broker restart, Stalk down)
            nonlocal started
            ids = store.unfinished()
            if not started:  # at start: results the history had not written yet when Stalk last died
                started = True
                ids += unknown_results(stack.app.backend, lambda task_id: store.get(task_id) is not None)
            reconcile(ids, stack.app.backend, store.ingest)

        store.attach(EventReceiver(stack.app, store.ingest, log=log.info, on_connect=catch_up))

        def look_up_lost(ids: list[str]) -> None:  # finished before the worker died, unheard: the backend knows
            threading.Thread(target=reconcile, args=(ids, stack.app.backend, store.ingest),
                             name="stalk-reconcile-lost", daemon=True).start()

        store.on_lost = look_up_lost
    return store
