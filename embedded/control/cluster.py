"""What the workers say about themselves (registered tasks, consumed queues), cached briefly.

A broadcast with no worker online waits its whole timeout, so answers are cached for a few seconds
and the app's own registry / the stack's worker specs stand in when nobody answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery

from stalk.embedded.config import WorkerSpec

CACHE_SECONDS = 5.0


class ClusterView:
    """Registered task names and consumed queues: live answers first, local knowledge as fallback."""

    def __init__(self, app: Celery, user_app: Celery | None = None, worker_specs: Iterable[WorkerSpec] = (),
                 timeout: float = 1.0, eager: bool = False) -> None:
        self.app = app
        self.user_app = user_app
        self.worker_specs = tuple(worker_specs)
        self.timeout = timeout
        self.eager = eager
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self.expected = 0  # workers known to be up: a broadcast returns once that many answered

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def broadcast(self, kind: str, destination: list[str] | None = None, timeout: float | None = None) -> dict:
        """{hostname: reply} from `inspect().<kind>()`; {} when nobody answers."""
        limit = len(destination) if destination else (self.expected or None)
        inspector = self.app.control.inspect(timeout=timeout or self.timeout, destination=destination,
                                             limit=limit)
        return getattr(inspector, kind)() or {}

    def prefetch(self, *kinds: str) -> None:
        """Refresh stale `kinds` in parallel (each broadcast may wait its whole timeout)."""
        threads = [threading.Thread(target=self._cached, args=(kind,), daemon=True) for kind in kinds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _cached(self, kind: str) -> dict:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(kind)
            if hit and now - hit[0] < CACHE_SECONDS:
                return hit[1]
        try:
            value = self.broadcast(kind)
        except Exception:  # broker down: same as nobody answering
            value = {}
        with self._lock:
            self._cache[kind] = (time.monotonic(), value)
        return value

    def local_tasks(self) -> set[str]:
        app = self.user_app
        if app is None:
            return set()
        return {name for name in app.tasks if not name.startswith("celery.")}

    def tasks(self) -> frozenset[str] | None:
        """Task names some worker registers (or, when none answers, the app's registry); None: unknown."""
        if self.eager:
            return frozenset(self.local_tasks())
        self.prefetch("registered", "active_queues")
        replies = self._cached("registered")
        names = {str(n).split(" ", 1)[0] for reply in replies.values() for n in (reply or [])}
        if not replies:
            names = self.local_tasks()
        return frozenset(names) if names or replies else None

    def queues(self) -> frozenset[str] | None:
        """Queues some worker consumes (active_queues) plus those of the stack's workers; None: unknown."""
        if self.eager:
            return None
        replies = self._cached("active_queues")
        names: set[str] = {q["name"] for reply in replies.values() for q in (reply or [])
                           if isinstance(q, dict) and q.get("name") is not None}
        names |= {q for spec in self.worker_specs for q in spec.queues}
        return frozenset(names) if names or replies else None

    def route(self, name: str, args: tuple | list = (), kwargs: dict | None = None) -> str | None:
        """The queue `name` is routed to by the app's task_routes / default queue (routers may look at
        the arguments, e.g. a priority flag)."""
        app = self.user_app or self.app
        route = app.amqp.router.route({}, name, tuple(args), kwargs or {})
        queue = route.get("queue")
        return getattr(queue, "name", queue)
