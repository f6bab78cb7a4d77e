"""Eager mode: the store fed from Celery's signals in this process (no broker, no worker events)."""

from __future__ import annotations

import socket
import time
from typing import Any

from celery import Celery, signals
from celery.utils.saferepr import saferepr

from stalk.embedded.events import progress

EAGER_HOST = f"eager@{socket.gethostname()}"


class EagerFeed:
    """Turns the app's task signals into the events a worker would have sent."""

    connected_since = 0.0  # never disconnected: heartbeat expiry may run (there are no workers)

    def __init__(self, app: Celery, ingest: Any) -> None:
        self.app = app
        self._ingest = ingest
        self._started: dict[str, float] = {}  # task id -> perf_counter at prerun, for runtime
        self._hooks = [
            (signals.before_task_publish, self._published), (signals.task_prerun, self._prerun),
            (signals.task_success, self._success), (signals.task_failure, self._failure),
            (signals.task_retry, self._retry), (signals.task_revoked, self._revoked),
        ]

    def start(self) -> None:
        for signal, hook in self._hooks:
            signal.connect(hook, weak=False)
        progress.install_progress_events()
        progress.eager_sinks.append(self._progress)

    def stop(self) -> None:
        for signal, hook in self._hooks:
            signal.disconnect(hook)
        if self._progress in progress.eager_sinks:
            progress.eager_sinks.remove(self._progress)

    def _mine(self, task: Any) -> bool:
        return getattr(task, "app", None) is self.app

    def _emit(self, type_: str, task_id: str | None, **fields: Any) -> None:
        if task_id:
            self._ingest({"type": type_, "uuid": task_id, "hostname": EAGER_HOST, "timestamp": time.time(),
                          **fields})

    def _published(self, sender: Any = None, headers: dict | None = None, properties: dict | None = None,
                   routing_key: str | None = None, **_: Any) -> None:
        headers = headers or {}
        if headers.get("task") not in self.app.tasks:
            return
        self._emit("task-sent", headers.get("id"), name=headers.get("task"), args=headers.get("argsrepr"),
                   kwargs=headers.get("kwargsrepr"), retries=headers.get("retries") or 0,
                   root_id=headers.get("root_id"), parent_id=headers.get("parent_id"),
                   group_id=headers.get("group"), eta=headers.get("eta"), expires=headers.get("expires"),
                   queue=routing_key, routing_key=routing_key, priority=(properties or {}).get("priority"))

    def _prerun(self, sender: Any = None, task_id: str | None = None, task: Any = None,
                args: Any = None, kwargs: Any = None, **_: Any) -> None:
        if not self._mine(task):
            return
        req = task.request
        self._emit("task-received", task_id, name=task.name, args=saferepr(tuple(args or ())),
                   kwargs=saferepr(kwargs or {}), retries=req.retries or 0, root_id=req.root_id,
                   parent_id=req.parent_id, group_id=req.group)
        self._emit("task-started", task_id)
        if len(self._started) > 1000:  # tasks that never finished (killed mid-run): forget them
            self._started.clear()
        if task_id is not None:
            self._started[task_id] = time.perf_counter()

    def _success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        if self._mine(sender):
            task_id = sender.request.id
            started = self._started.pop(task_id, None)
            self._emit("task-succeeded", task_id, result=saferepr(result),
                       runtime=None if started is None else time.perf_counter() - started)

    def _failure(self, sender: Any = None, task_id: str | None = None, exception: Any = None,
                 einfo: Any = None, **_: Any) -> None:
        if self._mine(sender):
            if task_id is not None:
                self._started.pop(task_id, None)
            self._emit("task-failed", task_id, exception=saferepr(exception),
                       traceback=str(getattr(einfo, "traceback", "") or ""))

    def _retry(self, sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None,
               **_: Any) -> None:
        if self._mine(sender):
            self._emit("task-retried", getattr(request, "id", None), exception=saferepr(reason),
                       traceback=str(getattr(einfo, "traceback", "") or ""))

    def _revoked(self, sender: Any = None, request: Any = None, terminated: bool = False,
                 expired: bool = False, **_: Any) -> None:
        if self._mine(sender):
            self._emit("task-revoked", getattr(request, "id", None), terminated=terminated, expired=expired)

    def _progress(self, task: Any, event: dict) -> None:
        if self._mine(task):
            self._ingest(dict(event, hostname=EAGER_HOST))
