"""Priority and group id of the tasks this process publishes: Celery's task events do not carry them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import signals


class PublishNotes:
    """Hooks before_task_publish and passes (task_id, priority, group_id) to `note`."""

    connected_since = 0.0  # not a receiver: never holds back heartbeat expiry

    def __init__(self, note: Callable[[str, int | None, str | None], None]) -> None:
        self._note = note

    def start(self) -> None:
        signals.before_task_publish.connect(self._published, weak=False)

    def stop(self) -> None:
        signals.before_task_publish.disconnect(self._published)

    def _published(self, sender: Any = None, headers: dict | None = None, properties: dict | None = None,
                   **_: Any) -> None:
        headers = headers or {}
        task_id = headers.get("id")
        if task_id:
            self._note(task_id, (properties or {}).get("priority"), headers.get("group"))
