"""The tasks one worker holds: running (with its pool process), prefetched, or waiting for their eta."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from stalk.embedded.control import HeldTask
from stalk.panel.colours import colour
from stalk.panel.formatting import clock_time, duration, preview
from stalk.panel.widgets.keyed_table import KeyedTable


def held_cells(task: HeldTask, kind: str, now: float, variables: Mapping[str, str]) -> tuple[object, ...]:
    if kind == "active":
        ran = f"running {duration(now - task.started)}" if task.started else "running"
        when = Text(ran + (f" · pid {task.worker_pid}" if task.worker_pid else ""), style=colour("primary", variables))
    elif kind == "scheduled":
        due = f"due {clock_time(task.eta, now)} (in {duration(task.eta - now)})" if task.eta else "due -"
        when = Text(due, style=colour("warning", variables))
    else:
        when = Text("prefetched", style="dim")
    args = preview(task.args, 40) + ("" if task.kwargs in ("{}", "") else " " + preview(task.kwargs, 30))
    return (task.task_id[:8], Text(task.name, style="bold"), Text(args, style="dim"), when)


class HeldTable(KeyedTable):
    """Row key = task id; enter opens the task."""

    COLUMNS = ("id", "task", "args", "state")
    WIDTHS = (8, 22, 16, 28)  # "running 12m03s · pid 18995"
    FLEX = {"task": 40, "args": None}

    def show_held(self, held: Sequence[tuple[str, HeldTask]], now: float, variables: Mapping[str, str]) -> None:
        self.show([(task.task_id, held_cells(task, kind, now, variables)) for kind, task in held])
