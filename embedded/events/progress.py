"""PROGRESS made visible: `update_state(state="PROGRESS", meta=...)` also sends a `task-progress` event.

Installed in every `stalk worker` child (children.run_worker). In eager mode the event goes straight to
the in-process sinks (eager.EagerFeed) instead of the broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

PROGRESS_STATES = frozenset({"PROGRESS"})
eager_sinks: list[Callable[[Any, dict], None]] = []  # (task, event)
log = logging.getLogger(__name__)


def install_progress_events() -> None:
    """Patch celery's Task.update_state once per process."""
    from celery.app.task import Task

    original = Task.update_state
    if getattr(original, "stalk_progress", False):
        return

    def update_state(self: Task, task_id: str | None = None, state: str | None = None,
                     meta: dict | None = None, **kwargs: Any) -> None:
        original(self, task_id=task_id, state=state, meta=meta, **kwargs)
        if state in PROGRESS_STATES:
            announce(self, task_id or self.request.id, state, meta)

    update_state.stalk_progress = True  # type: ignore[attr-defined]
    Task.update_state = update_state


def announce(task: Any, task_id: str | None, state: str, meta: Any) -> None:
    """Best effort: a lost progress event must never fail the task."""
    if task_id is None:
        return
    try:
        if task.request.is_eager:
            event = {"type": "task-progress", "uuid": task_id, "state": state, "meta": meta,
                     "timestamp": time.time()}
            for sink in list(eager_sinks):
                sink(task, event)
            return
        with task.app.events.default_dispatcher(hostname=task.request.hostname) as dispatcher:
            dispatcher.send("task-progress", uuid=task_id, state=state, meta=meta, retry=False)
    except Exception as exc:
        log.debug("task-progress event not sent: %r", exc)
