"""Webhooks and alerts of a stack, in the shapes of the stack's API (GET /webhooks, /webhooks/deliveries,
/alerts), whether the panel runs the stack in process or is attached to its process (a RemoteStack:
every read is an API request; the stack process owns the outbox)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DELIVERIES = 100  # newest deliveries shown
ALERT_EVENTS = 100  # newest alert events read
NO_ALERTS: dict[str, list[dict[str, Any]]] = {"rules": [], "recent": []}
DELIVERY_FIELDS = ("id", "hook", "task_id", "name", "state", "status", "created", "attempts", "next_at",
                   "last_try", "last_status", "last_error", "acked_at")


@dataclass
class HooksData:
    """What the Hooks screen shows, read in one worker pass."""

    hooks: list[dict[str, Any]] = field(default_factory=list)  # GET /webhooks' hooks
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # newest first
    webhooks: bool = False  # the stack runs webhooks ([[webhooks]] in stalk.toml)
    rules: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # alert events, newest first
    read: bool = False  # a poll came back (before it: nothing to say yet)
    problem: str | None = None


def fetch_hooks(stack: Any, failures: bool = False, limit: int = DELIVERIES) -> HooksData:
    """Webhooks then alerts; a failure of either is the `problem`, the other part is still shown."""
    data = HooksData(read=True)
    problems = []
    try:
        data.webhooks, data.hooks, data.deliveries = read_webhooks(stack, failures, limit)
    except Exception as exc:  # said on screen; the last rows stay (the screen keeps them)
        problems.append(f"webhooks: {_reason(exc)}")
    try:
        alerts = read_alerts(stack)
        data.rules, data.events = list(alerts.get("rules") or []), list(alerts.get("recent") or [])
    except Exception as exc:
        problems.append(f"alerts: {_reason(exc)}")
    data.problem = "; ".join(problems) or None
    return data


def read_webhooks(stack: Any, failures: bool = False,
                  limit: int = DELIVERIES) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
    """(configured, hooks, deliveries newest first)."""
    if getattr(stack, "remote", False):
        info = stack.client.get("/webhooks")
        if info.get("outbox") is None:
            return False, [], []
        return True, list(info["hooks"]), list(stack.client.get("/webhooks/deliveries", limit=limit,
                                                                failures=failures))
    webhooks = getattr(stack, "webhooks", None)
    if webhooks is None:
        return False, [], []
    outbox = webhooks.outbox
    counts = outbox.counts()
    hooks = [{"url": h.url, "tasks": list(h.tasks), "states": list(h.states), "signed": bool(h.secret),
              "timeout": h.timeout, "backoff_max": h.backoff_max,
              "counts": {"delivered": 0, "pending": 0, "failing": 0, **counts.get(h.url, {})}}
             for h in webhooks.hooks]
    return True, hooks, [delivery_dict(row) for row in outbox.recent(limit, failures=failures)]


def delivery_dict(row: Any) -> dict[str, Any]:
    """An outbox Delivery as the API shows it (its payload left out)."""
    return {name: getattr(row, name) for name in DELIVERY_FIELDS}


def retry_delivery(stack: Any, delivery_id: int) -> dict[str, Any]:
    """Send a pending or failing delivery now; raises with the reason when it cannot be."""
    if getattr(stack, "remote", False):
        return dict(stack.client.post(f"/webhooks/deliveries/{delivery_id}/retry"))
    webhooks = getattr(stack, "webhooks", None)
    if webhooks is None:
        raise LookupError("no webhooks configured")
    row = webhooks.retry(delivery_id)
    if row is None:
        raise LookupError(f"no delivery {delivery_id} in the outbox")
    if row.acked_at is not None:
        raise ValueError(f"delivery {delivery_id} was acknowledged already: it is never sent again")
    return delivery_dict(row)


def read_alerts(stack: Any, limit: int = ALERT_EVENTS) -> dict[str, list[dict[str, Any]]]:
    """{"rules": [...], "recent": [...]}: empty when the stack has no alerts (or does not know them)."""
    if stack is None:
        return NO_ALERTS
    if getattr(stack, "remote", False):
        try:
            return dict(stack.client.get("/alerts", limit=limit))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:  # a stack without alerts, or one older than them
                return NO_ALERTS
            raise
    alerts = getattr(stack, "alerts", None)
    return NO_ALERTS if alerts is None else dict(alerts.status(limit=limit))


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc) or type(exc).__name__
