"""Command palette provider fed by the action registry (the same actions as the keys and Help)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .actions import SCOPE_TITLES, Action, actions_for


class ActionCommands(Provider):
    """Every app-wide action plus the actions of the screen the palette was opened on."""

    def _actions(self) -> list[tuple[Action, object]]:
        scope = getattr(self.screen, "SCOPE", None)
        found: list[tuple[Action, object]] = [(a, self.screen) for a in actions_for(scope)] if scope else []
        found += [(a, self.app) for a in actions_for("app") if a.action != "command_palette"]
        return found

    @staticmethod
    def _label(action: Action) -> str:
        return f"{SCOPE_TITLES.get(action.scope, action.scope)}: {action.description}"

    async def discover(self) -> Hits:
        for action, target in self._actions():
            yield DiscoveryHit(self._label(action), partial(self.app.run_action, action.action, target),
                               help=f"key: {action.keys_label}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, target in self._actions():
            label = self._label(action)
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(self.app.run_action, action.action, target),
                          text=label, help=f"key: {action.keys_label}")
