"""The frame every mode shares: mode bar, stack banner, body, footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen

from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.mode_bar import ModeBar
from stalk.panel.widgets.stack_banner import StackBanner

if TYPE_CHECKING:  # app.py imports the screens
    from stalk.embedded import Stack
    from stalk.panel.app import StalkApp


class StalkScreen(Screen):
    """Subclasses set SCOPE (action scope = mode name), BINDINGS = bindings(SCOPE), and compose_body."""

    SCOPE = ""
    _styled = False

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Textual restyles a resumed screen's whole tree in case styles changed while it was away:
        3-5 ms at each mode switch (twice that under load), for nothing here. A class added to a widget
        of a suspended screen restyles it at once (DOMNode.add_class), and a change of the app's CSS
        (a theme) is caught up when the screen comes back (App.switch_mode compares CSS update
        counts), so a mode screen is restyled on its first resume only. Its next frame is cheaper
        too: the restyle threw away every widget's rendered lines (screen update 11 -> 5 ms)."""
        if self._styled:
            event.refresh_styles = False
        self._styled = True
        super()._on_screen_resume(event)

    def compose(self) -> ComposeResult:
        yield ModeBar(self.SCOPE)
        yield StackBanner()
        yield from self.compose_body()
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def stack(self) -> Stack | None:  # the Stack, or None before it exists
        return cast("StalkApp", self.app).stack  # Textual types self.app as App[object]
