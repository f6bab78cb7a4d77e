"""The last failed tasks: when, which, why (enter opens the task)."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from stalk.panel.formatting import clock_time, preview
from stalk.panel.task_rows import field
from stalk.panel.widgets.keyed_table import PlainTable


class RecentFailures(PlainTable):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._shown: list[str] = []

    def on_mount(self) -> None:
        self.add_columns("failed", "task", "exception")

    def show(self, failures: list[Any] | None) -> None:
        failures = failures or []
        ids = [str(field(f, "task_id", "id", "uuid")) for f in failures]
        if ids == self._shown:
            return
        self._shown = ids
        self.clear()
        now = getattr(self.app, "clock", time.time)()  # the panel's: a failure of another day shows its date
        for task_id, f in zip(ids, failures, strict=True):
            when = clock_time(field(f, "finished", "updated", "received"), now)
            self.add_row(when, field(f, "name") or "?",
                         Text(preview(field(f, "exception") or "", 60), style="red"), key=task_id)
