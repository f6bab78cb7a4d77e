"""One map from process and task states to theme colours, so a state looks the same on every screen."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from stalk.embedded import ProcState

# Theme variable names (resolved against the active theme, so every theme works).
PROC_STATE_ROLES: dict[str, str] = {
    ProcState.READY: "success",
    ProcState.RUNNING: "success",
    ProcState.STARTING: "warning",
    ProcState.UNRESPONSIVE: "error",
    ProcState.BACKING_OFF: "warning",
    ProcState.CRASHED: "error",
    ProcState.STOPPED: "foreground-muted",
}

TASK_STATE_ROLES: dict[str, str] = {
    "PENDING": "foreground-muted",
    "RECEIVED": "secondary",
    "STARTED": "primary",
    "PROGRESS": "primary",
    "RETRY": "warning",
    "SUCCESS": "success",
    "FAILURE": "error",
    "REVOKED": "warning",
    "REJECTED": "error",
    "LOST": "error",  # its worker died or went silent mid-run
    "PURGED": "warning",  # its message deleted from the queue by a purge, as asked (like REVOKED)
    "REQUEUED": "warning",  # put back in its queue by Stalk: its worker died holding it (runs again)
}

LOG_LEVEL_ROLES: dict[str, str] = {
    "CRITICAL": "error",
    "ERROR": "error",
    "WARNING": "warning",
    "DEBUG": "foreground-muted",
}

FALLBACK = {"success": "green", "warning": "yellow", "error": "red", "primary": "blue",
            "secondary": "cyan", "foreground-muted": "grey50"}


def role_of(state: str) -> str:
    """The theme role of a process state or a task state (unknown states are muted)."""
    if state in PROC_STATE_ROLES:
        return PROC_STATE_ROLES[state]
    return TASK_STATE_ROLES.get(str(state).upper(), "foreground-muted")


def colour(role: str, variables: Mapping[str, str]) -> str:
    value = variables.get(role) or FALLBACK.get(role, "default")
    # Textual variables may carry alpha (#RRGGBBAA); Rich wants #RRGGBB.
    if value.startswith("#") and len(value) == 9:
        value = value[:7]
    return value


def state_text(state: str, variables: Mapping[str, str], label: str | None = None) -> Text:
    """`state` (or `label`) in its state colour; terminal states bold."""
    role = role_of(state)
    style = colour(role, variables)
    if role in ("error", "success"):
        style = f"bold {style}"
    return Text(label if label is not None else str(state), style=style)


def markup(state: str, label: str | None = None) -> str:
    """Content markup for `state` in its colour (for Static widgets, which resolve $variables)."""
    return f"[${role_of(state)}]{label if label is not None else state}[/]"
