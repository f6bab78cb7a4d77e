"""The one registry of actions: key bindings, the footer, the command palette and Help all read it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

MODES: dict[str, str] = {  # mode name -> title, in the order of their number keys
    "dashboard": "Dashboard",
    "tasks": "Tasks",
    "workers": "Workers",
    "beat": "Beat",
    "quota": "Quota",
    "logs": "Logs",
    "submit": "Submit",
    "hooks": "Hooks",
}

SCOPE_TITLES = {"app": "Everywhere", **MODES, "detail": "Task detail", "worker": "Worker detail", "help": "Help"}


@dataclass(frozen=True)
class Action:
    scope: str  # "app" or the screen that owns it
    key: str  # Textual key spec; comma-separated for several keys
    action: str  # Textual action string, run on the app (scope "app") or the screen
    description: str
    show: bool = True  # in the footer
    priority: bool = False
    key_display: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope}.{self.action.split('(')[0]}" + (
            f".{self.action.split(chr(39))[1]}" if "'" in self.action else "")

    @property
    def keys_label(self) -> str:
        return self.key_display or " ".join(k.strip() for k in self.key.split(","))

    def binding(self) -> Binding:
        return Binding(self.key, self.action, self.description, show=self.show, priority=self.priority,
                       key_display=self.key_display, id=self.id, tooltip=self.description)


_MODE_KEYS = [Action("app", str(n), f"switch_mode('{mode}')", f"Go to {title}", show=False)
              for n, (mode, title) in enumerate(MODES.items(), start=1)]

ACTIONS: list[Action] = [
    *_MODE_KEYS,
    Action("app", "question_mark", "help", "Help", key_display="?"),
    Action("app", "colon", "command_palette", "Palette", key_display=":"),
    Action("app", "ctrl+q", "quit", "Quit", priority=True),
    # Dashboard: supervised processes
    Action("dashboard", "r", "restart", "Restart"),
    Action("dashboard", "s", "stop", "Stop"),
    Action("dashboard", "g", "start", "Start"),
    Action("dashboard", "k", "kill", "Kill", show=False),
    Action("dashboard", "enter", "logs", "Logs"),
    # Tasks
    Action("tasks", "slash", "search", "Search", key_display="/"),
    Action("tasks", "f", "cycle_state", "State filter"),
    Action("tasks", "o", "cycle_sort", "Sort"),
    Action("tasks", "O", "reverse_sort", "Reverse", show=False),
    Action("tasks", "enter", "open", "Open"),
    Action("tasks", "escape", "clear_filter", "Clear filter", show=False, key_display="esc"),
    # Task detail
    Action("detail", "escape", "back", "Back", key_display="esc"),
    Action("detail", "v", "revoke", "Revoke"),
    Action("detail", "t", "terminate", "Terminate"),
    Action("detail", "R", "resubmit", "Re-submit"),
    Action("detail", "c", "copy_id", "Copy id"),
    # Submit
    Action("submit", "ctrl+s", "submit", "Submit", priority=True),
    Action("submit", "ctrl+l", "pick_task", "Pick task", priority=True),
    Action("submit", "escape", "leave_field", "Leave field", key_display="esc"),
    # Workers and queues
    Action("workers", "plus", "grow", "Grow pool", key_display="+"),
    Action("workers", "minus", "shrink", "Shrink pool", key_display="-"),
    Action("workers", "a", "autoscale", "Autoscale"),
    Action("workers", "l", "rate_limit", "Rate limit"),
    Action("workers", "r", "restart", "Restart"),
    Action("workers", "x", "shutdown", "Shutdown"),
    Action("workers", "p", "purge", "Purge queue"),
    Action("workers", "tab", "focus_next", "Next table", show=False),
    Action("workers", "enter", "open_worker", "Worker detail", show=False),
    # Worker detail
    Action("worker", "escape", "back", "Back", key_display="esc"),
    Action("worker", "enter", "open_task", "Open task"),
    # Beat
    Action("beat", "n", "run_now", "Run now"),
    # Quota
    Action("quota", "left,h", "previous_quota", "Previous", key_display="←"),
    Action("quota", "right,l", "next_quota", "Next", key_display="→"),
    # Logs
    Action("logs", "f", "toggle_follow", "Follow"),
    Action("logs", "slash", "filter", "Filter", key_display="/"),
    Action("logs", "escape", "clear_filter", "Clear filter", show=False, key_display="esc"),
    Action("logs", "[", "previous_process", "Prev process", key_display="["),
    Action("logs", "]", "next_process", "Next process", key_display="]"),
    # Hooks: alerts and webhook deliveries
    Action("hooks", "f", "toggle_failures", "Failures only"),
    Action("hooks", "r", "retry", "Retry now"),
    Action("hooks", "enter", "open_task", "Open task"),
    # Help
    Action("help", "escape,question_mark", "back", "Back", key_display="esc"),
]


def actions_for(scope: str) -> list[Action]:
    return [a for a in ACTIONS if a.scope == scope]


def bindings(scope: str) -> list[BindingType]:
    """The BINDINGS of the screen (or app) that owns `scope` (typed as Textual's BINDINGS are)."""
    return [a.binding() for a in actions_for(scope)]
