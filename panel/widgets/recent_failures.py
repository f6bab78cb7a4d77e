"""The last failed tasks: when, which, why (enter opens the task)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from ..formatting import clock_time, preview


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


class RecentFailures(DataTable):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._shown: list[str] = []

    def on_mount(self) -> None:
        self.add_columns("failed", "task", "exception")

    def show(self, failures: list[Any] | None) -> None:
        failures = failures or []
        ids = [str(_get(f, "task_id", "id", "uuid")) for f in failures]
        if ids == self._shown:
            return
        self._shown = ids
        self.clear()
        for task_id, f in zip(ids, failures, strict=True):
            when = clock_time(_get(f, "finished", "updated", "received"))
            self.add_row(when, _get(f, "name") or "?",
                         Text(preview(_get(f, "exception") or "", 60), style="red"), key=task_id)
