"""Messages that carry stack state from worker threads and listeners to the app (the app owns state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from stalk.embedded import BrokerInfo, ProcessInfo


@dataclass(frozen=True)
class Phase:
    """Where the stack is in its life: starting (with progress), ready, failed or stopping."""

    kind: str  # idle | starting | ready | failed | stopping
    text: str = ""
    done: int = 0
    total: int = 0


class StackAttached(Message):
    """The Stack object exists (its config and app loaded); `start()` may still be running."""

    def __init__(self, stack: Any) -> None:
        super().__init__()
        self.stack = stack


class PhaseChanged(Message):
    def __init__(self, phase: Phase) -> None:
        super().__init__()
        self.phase = phase


class ProcessesChanged(Message):
    """A snapshot of every supervised process (the live listener and test harnesses both post this)."""

    def __init__(self, snapshot: list[ProcessInfo]) -> None:
        super().__init__()
        self.snapshot = tuple(snapshot)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProcessesChanged)


class BrokerChanged(Message):
    def __init__(self, info: BrokerInfo | None) -> None:
        super().__init__()
        self.info = info


class BrokerHealth(Message):
    """Result of a broker probe: `problem` is None when it answers."""

    def __init__(self, problem: str | None) -> None:
        super().__init__()
        self.problem = problem


class TasksChanged(Message):
    """The event store changed (batched by the store); merged in the queue, screens re-query."""

    def __init__(self, changes: Any) -> None:
        super().__init__()
        self.changes = changes

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TasksChanged)


class Notice(Message):
    """Something for the user to read: stack errors become notices, never crashes."""

    def __init__(self, text: str, severity: str = "information", timeout: float = 6.0) -> None:
        super().__init__()
        self.text = text
        self.severity = severity
        self.timeout = timeout


class LogsShow(Message):
    """Ask the Logs screen to show one process."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class LogsFetched(Message):
    """New log lines per process since the last fetch."""

    def __init__(self, lines: dict[str, list[Any]]) -> None:
        super().__init__()
        self.lines = lines


class QuitChecked(Message):
    """What quitting now would interrupt (a stalk.embedded.Unfinished), counted on a thread."""

    def __init__(self, work: Any) -> None:
        super().__init__()
        self.work = work


class QuitNow(Message):
    """The running tasks are done (or the wait was cut short): stop and exit."""


class OpenTask(Message):
    """Open the detail of one task in Tasks (from Tasks or Hooks; Submit opens its own over the form)."""

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
