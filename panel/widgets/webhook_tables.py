"""The Hooks screen's webhook tables: the configured hooks with their delivery counts, and the outbox's
deliveries, newest first. Every cell quoting the stack (URLs, task names, errors) is made printable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from stalk.panel.colours import colour, state_text
from stalk.panel.formatting import printable
from stalk.panel.markup_text import escape
from stalk.panel.widgets.alert_tables import stamp
from stalk.panel.widgets.keyed_table import KeyedTable

STATUS_ROLES = {"delivered": "success", "pending": "primary", "failing": "error"}
ALERT_PREFIX = "alert:"  # an alert notification's outbox hook key: alert:<rule>:<url> (embedded/alerts)


def alert_rule(row: Mapping[str, Any]) -> str | None:
    """The alert rule a delivery notifies of (None: a task's webhook delivery)."""
    hook = str(row.get("hook", ""))
    return str(row.get("name") or "?") if hook.startswith(ALERT_PREFIX) else None


def url_of(row: Mapping[str, Any]) -> str:
    """The URL a delivery goes to (an alert's hook key holds its rule's name before it)."""
    hook = str(row.get("hook", ""))
    rule = alert_rule(row)
    prefix = f"{ALERT_PREFIX}{rule}:"
    return hook[len(prefix):] if rule is not None and hook.startswith(prefix) else hook


def short_url(row: Mapping[str, Any]) -> str:
    """The delivery's URL without its scheme (the hooks table above has it whole)."""
    url = url_of(row)
    return url.split("://", 1)[1] if "://" in url else url


def count_text(n: int, role: str, variables: Mapping[str, str]) -> Text:
    return Text(f"{n:,}", style=colour(role, variables) if n else "dim")


def hook_cells(hook: Mapping[str, Any], variables: Mapping[str, str]) -> tuple[object, ...]:
    counts = hook.get("counts") or {}
    return (printable(str(hook.get("url", ""))), printable(", ".join(hook.get("tasks") or ())),
            printable(", ".join(hook.get("states") or ())), "yes" if hook.get("signed") else "",
            count_text(int(counts.get("delivered", 0)), "success", variables),
            count_text(int(counts.get("pending", 0)), "primary", variables),
            count_text(int(counts.get("failing", 0)), "error", variables))


def last_outcome(row: Mapping[str, Any]) -> str:
    """The last try's error, else its HTTP status; '-' before the first try."""
    if row.get("last_error"):
        return printable(" ".join(str(row["last_error"]).split()))
    if row.get("last_status") is not None:
        return f"HTTP {row['last_status']}"
    return "-"


def delivery_cells(row: Mapping[str, Any], variables: Mapping[str, str]) -> tuple[object, ...]:
    status = str(row.get("status", "?"))
    role = STATUS_ROLES.get(status, "foreground-muted")
    rule = alert_rule(row)
    task = f"alert {rule}" if rule is not None else str(row.get("name") or "?")
    task_id = "-" if rule is not None else str(row.get("task_id", ""))[:8]
    return (stamp(row.get("created")), printable(short_url(row)), printable(task),
            printable(task_id), state_text(str(row.get("state", "?")), variables),
            Text(status, style=colour(role, variables)), str(row.get("attempts", 0)), last_outcome(row))


def delivery_markup(row: Mapping[str, Any] | None) -> str:
    """The selected delivery whole (the table cuts its URL and error): where, what, how it went."""
    if row is None:
        return ""
    rule = alert_rule(row)
    what = (f"alert [b]{escape(rule)}[/b] {escape(str(row.get('state', '')))}" if rule is not None else
            f"task [b]{escape(str(row.get('name') or '?'))}[/b] {escape(str(row.get('task_id', '')))} "
            f"{escape(str(row.get('state', '')))}")
    status, tries = str(row.get("status", "?")), int(row.get("attempts") or 0)
    head = f"[$foreground-muted]#{row.get('id')}[/] {what} → {escape(url_of(row))}"
    after = f"after {tries} tr{'y' if tries == 1 else 'ies'}"
    if status == "delivered":
        how = f"[$success]delivered[/] {stamp(row.get('acked_at'))} ({escape(last_outcome(row))}) {after}"
    elif status == "failing":
        how = (f"[$error]failing[/] {after}, last {stamp(row.get('last_try'))}: {escape(last_outcome(row))}; "
               f"next try {stamp(row.get('next_at'))}")
    else:
        how = "[$primary]pending[/]: not tried yet"
    return f"{head}\n{how}"


class HookTable(KeyedTable):
    """Not focusable, no cursor: the deliveries table below is the one the keys act on."""

    can_focus = False
    COLUMNS = ("url", "tasks", "states", "signed", "delivered", "pending", "failing")
    WIDTHS = (30, 14, 18, 6, 9, 7, 7)
    FLEX = {"url": None, "tasks": 30, "states": 40}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.show_cursor = False

    def show_hooks(self, hooks: Sequence[Mapping[str, Any]], variables: Mapping[str, str]) -> None:
        self.show([(str(h.get("url", i)), hook_cells(h, variables)) for i, h in enumerate(hooks)])


class DeliveryTable(KeyedTable):
    """Row key = the delivery id, so the cursor stays on its delivery as new ones arrive above it."""

    COLUMNS = ("created", "hook", "task", "task id", "state", "status", "tries", "last try")
    WIDTHS = (14, 20, 14, 8, 8, 9, 5, 14)
    FLEX = {"hook": 40, "task": 30, "last try": None}

    def show_deliveries(self, rows: Sequence[Mapping[str, Any]], variables: Mapping[str, str]) -> None:
        self.show([(str(r.get("id")), delivery_cells(r, variables)) for r in rows])

    def selected_row(self, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        key = self.selected
        return next((r for r in rows if str(r.get("id")) == key), None)
