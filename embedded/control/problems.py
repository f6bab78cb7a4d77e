"""What validation finds: one Problem per thing wrong, and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: an "error" never sends; a "warning" sends only when forced."""

    severity: str  # "error" | "warning"
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return self.message


def error(field: str | None, message: str) -> Problem:
    return Problem("error", message, field)


def warning(field: str | None, message: str) -> Problem:
    return Problem("warning", message, field)


class SubmitError(ValueError):
    """Nothing was sent: `problems` says why (their messages, joined, are the error's text)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems) or "not sent")


class ControlError(RuntimeError):
    """A control action failed (broker unreachable, unknown worker...): one clear line."""


class BadInput(ControlError, ValueError):
    """A value given to a control action is wrong (a negative time limit, an unknown queue, a task id no
    task can have...): one clear line naming it; nothing was sent or stored. The CLI exits 2."""
