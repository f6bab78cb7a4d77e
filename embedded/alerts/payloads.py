"""What an alert sends: the outbox targets of each rule's URLs, and the body of a firing or resolution,
as JSON (the rule, its state, value and threshold) or as a Slack incoming-webhook message ({"text": ...}).
"""

from __future__ import annotations

import json
from typing import Any

from stalk.embedded.alerts.history import AlertEvent
from stalk.embedded.config import AlertConfig
from stalk.embedded.webhooks import Entry, Target

EVENT = "alert"  # X-Stalk-Event: alert.firing, alert.resolved


def target_key(rule: AlertConfig, url: str) -> str:
    """The outbox's hook column for one rule's URL: a rule's rows go out in order, apart from others'."""
    return f"alert:{rule.name}:{url}"


def targets_for(rules: tuple[AlertConfig, ...]) -> tuple[Target, ...]:
    return tuple(Target(target_key(r, url), url, r.secret, r.timeout, r.backoff_max, EVENT, raw=r.format == "slack")
                 for r in rules for url in r.urls)


def json_payload(rule: AlertConfig, event: AlertEvent, description: str) -> dict[str, Any]:
    return {"event": f"{EVENT}.{event.state}", "id": event.id, "rule": rule.name, "kind": rule.kind,
            "description": description, "state": event.state, "value": event.value, "threshold": event.threshold,
            "at": event.at, "message": event.message}


def slack_text(rule: AlertConfig, event: AlertEvent) -> str:
    """A short line; Slack's control characters (&, <, >) escaped as its docs ask."""
    head = ":rotating_light: FIRING" if event.state == "firing" else ":white_check_mark: resolved"
    text = f"{head} [stalk] {rule.name}: {event.message}"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def entries_for(rule: AlertConfig, event: AlertEvent, description: str) -> list[Entry]:
    """One outbox row per URL of the rule; the event's id keeps a second enqueue harmless."""
    if rule.format == "slack":
        body: dict[str, Any] = {"text": slack_text(rule, event)}
    else:
        body = json_payload(rule, event, description)
    payload = json.dumps(body, separators=(",", ":"))
    return [Entry(target_key(rule, url), rule.name, event.state, str(event.id), rule.name, payload)
            for url in rule.urls]
