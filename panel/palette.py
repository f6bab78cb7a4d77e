"""Command palette provider fed by the action registry (the same actions as the keys and Help)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from stalk.panel.actions import MODES, SCOPE_TITLES, Action, actions_for


class ActionCommands(Provider):
    """The actions of the screen the palette was opened on, every app-wide action, then the other
    screens' actions: one of those switches to its screen first (k9s's `:` reaches any view)."""

    def _actions(self) -> list[tuple[Action, Any]]:
        scope = getattr(self.screen, "SCOPE", None)
        found: list[tuple[Action, Any]] = [(a, self.screen) for a in actions_for(scope)] if scope else []
        found += [(a, self.app) for a in actions_for("app") if a.action != "command_palette"]
        found += [(a, None) for mode in MODES if mode != scope for a in actions_for(mode)]
        return found

    def _runner(self, action: Action, target: Any) -> Callable[[], Any]:
        if target is None:
            return partial(self._run_elsewhere, action)
        return partial(self.app.run_action, action.action, target)

    async def _run_elsewhere(self, action: Action) -> None:
        await self.app.switch_mode(action.scope)
        await self.app.run_action(action.action, self.app.screen)

    @staticmethod
    def _label(action: Action) -> str:
        return f"{SCOPE_TITLES.get(action.scope, action.scope)}: {action.description}"

    async def discover(self) -> Hits:
        for action, target in self._actions():
            yield DiscoveryHit(self._label(action), self._runner(action, target), help=f"key: {action.keys_label}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for action, target in self._actions():
            label = self._label(action)
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), self._runner(action, target), text=label,
                          help=f"key: {action.keys_label}")
