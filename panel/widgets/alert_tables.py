"""The Hooks screen's alerts: each rule's state (firing red, ok green), then the newest alert events."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import Static

from stalk.panel.colours import colour
from stalk.panel.formatting import printable
from stalk.panel.markup_text import escape
from stalk.panel.widgets.keyed_table import KeyedTable

RULE_ROLES = {"firing": "error", "ok": "success", "unknown": "foreground-muted"}
EVENT_ROLES = {"firing": "error", "resolved": "success"}
EVENTS_SHOWN = 3  # the newest; the rules above say each one's state


def stamp(value: Any) -> str:
    """An epoch time as local `MM-DD HH:MM:SS`; '-' when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return datetime.fromtimestamp(value).strftime("%m-%d %H:%M:%S")


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if not math.isfinite(value) or value == int(value):
        return f"{value:,.0f}" if math.isfinite(value) else str(value)
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def rule_cells(rule: Mapping[str, Any], variables: Mapping[str, str]) -> tuple[object, ...]:
    state = str(rule.get("state", "unknown"))
    style = colour(RULE_ROLES.get(state, "foreground-muted"), variables)
    return (Text(state, style=f"bold {style}" if state == "firing" else style),
            Text(printable(str(rule.get("name", "?"))), style="bold"),
            printable(str(rule.get("description") or rule.get("kind") or "")), number(rule.get("value")),
            stamp(rule.get("since")) if state != "unknown" else "-",
            printable(" ".join(str(rule.get("message") or "").split())))


class AlertRules(KeyedTable):
    """Not focusable, no cursor: the keys of the screen act on the deliveries."""

    can_focus = False
    COLUMNS = ("state", "rule", "condition", "value", "since", "message")
    WIDTHS = (7, 16, 36, 6, 14, 18)
    FLEX = {"rule": 30, "condition": 40, "message": None}

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.show_cursor = False

    def show_rules(self, rules: Sequence[Mapping[str, Any]], variables: Mapping[str, str]) -> None:
        self.show([(str(r.get("name", i)), rule_cells(r, variables)) for i, r in enumerate(rules)])


def events_markup(events: Sequence[Mapping[str, Any]], shown: int = EVENTS_SHOWN) -> str:
    """The newest `shown` events, one a line: when, rule, firing/resolved, message (escaped)."""
    lines = []
    for event in events[:shown]:
        state = str(event.get("state", "?"))
        role = EVENT_ROLES.get(state, "foreground-muted")
        message = escape(" ".join(str(event.get("message") or "").split()))
        lines.append(f"[$foreground-muted]{stamp(event.get('at'))}[/]  [b]{escape(str(event.get('rule', '?')))}[/b]"
                     f"  [${role}]{escape(state)}[/]  {message}")
    more = len(events) - shown
    if more > 0:
        lines.append(f"[$foreground-muted]… {more} older[/]")
    return "\n".join(lines) or "[$foreground-muted]no alert events yet[/]"


class AlertEvents(Static):
    def show_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.update(events_markup(events))
