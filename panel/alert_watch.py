"""Which alert rules began firing since the last look (the app polls the alerts and toasts those)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual.message import Message

ALERTS_EVERY = 5.0  # s between the app's looks at the alerts


class AlertWatch:
    """Rules firing at the first look are not news (the Hooks screen shows them); a rule that goes to
    firing later is, once per change."""

    def __init__(self) -> None:
        self._states: dict[str, str] | None = None

    def newly_firing(self, rules: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        states = {str(r.get("name")): str(r.get("state")) for r in rules}
        before, self._states = self._states, states
        if before is None:
            return []
        return [r for r in rules if r.get("state") == "firing" and before.get(str(r.get("name"))) != "firing"]


class AlertsRead(Message):
    """The alert rules as the stack reports them (read on a thread by the app)."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rules = rules
