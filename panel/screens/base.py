"""The frame every mode shares: mode bar, stack banner, body, footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen

from ..widgets.key_bar import KeyBar
from ..widgets.mode_bar import ModeBar
from ..widgets.stack_banner import StackBanner


class StalkScreen(Screen):
    """Subclasses set SCOPE (action scope = mode name), BINDINGS = bindings(SCOPE), and compose_body."""

    SCOPE = ""

    def compose(self) -> ComposeResult:
        yield ModeBar(self.SCOPE)
        yield StackBanner()
        yield from self.compose_body()
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def stack(self):  # the Stack, or None before it exists
        return self.app.stack  # type: ignore[attr-defined]
