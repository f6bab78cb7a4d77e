"""The row of screens at the top (k9s-style): number keys or a click switch between them."""

from __future__ import annotations

from textual.widgets import Static

from ..actions import MODES


class ModeBar(Static):
    DEFAULT_CSS = """
    ModeBar { height: 1; background: $panel; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(self._markup(current), markup=True)
        self.current = current

    @staticmethod
    def _markup(current: str) -> str:
        parts = ["[b $accent]Stalk[/]"]
        for n, (mode, title) in enumerate(MODES.items(), start=1):
            style = "reverse $primary" if mode == current else "$foreground"
            parts.append(f"[@click=app.switch_mode('{mode}')][{style}] {n} {title} [/][/]")
        parts.append("[@click=app.help][$foreground-muted] ? help[/][/]")
        return "  ".join(parts)
