"""The row of screens at the top (k9s-style): number keys or a click switch between them."""

from __future__ import annotations

from textual import events
from textual.widgets import Static

from stalk.panel.actions import MODES

SHORT = {"dashboard": "Dash"}  # titles shortened first when the terminal is narrow
SHORTER = {**SHORT, "workers": "Work"}  # then these, with no gaps but the items' own spaces (80 columns)


def bar_items(current: str, width: int) -> list[tuple[str, str, str | None]]:
    """(text, style, mode) items, the longest layout that fits `width` cells: full titles with wide gaps,
    then narrow gaps, short titles, no brand, no gaps, and at last the numbers with each title's first letters."""
    short, shorter = {**MODES, **SHORT}, {**MODES, **SHORTER}
    layouts = [(True, 2, MODES), (True, 1, MODES), (True, 1, short), (False, 1, short), (False, 0, short),
               (False, 0, shorter)]
    for brand, gap, titles in layouts:
        items = _items(current, brand, gap, titles)
        if sum(len(text) for text, _s, _m in items) <= width:
            return items
    return _items(current, False, 1, {mode: title[:3] for mode, title in MODES.items()})


def _items(current: str, brand: bool, gap: int, titles: dict[str, str]) -> list[tuple[str, str, str | None]]:
    items: list[tuple[str, str, str | None]] = [("Stalk", "b $accent", None)] if brand else []
    for n, mode in enumerate(MODES, start=1):
        style = "reverse $primary" if mode == current else "$foreground"
        items.append((f" {n} {titles[mode]} ", style, mode))
    items.append((" ? help", "$foreground-muted", "help"))
    spaced: list[tuple[str, str, str | None]] = []
    for i, item in enumerate(items):
        if i:
            spaced.append((" " * gap, "", None))
        spaced.append(item)
    return spaced


def bar_markup(items: list[tuple[str, str, str | None]]) -> str:
    parts = []
    for text, style, mode in items:
        if mode is None:
            parts.append(f"[{style}]{text}[/]" if style else text)
        else:
            action = "app.help" if mode == "help" else f"app.switch_mode('{mode}')"
            parts.append(f"[@click={action}][{style}]{text}[/][/]")
    return "".join(parts)


class ModeBar(Static):
    DEFAULT_CSS = """
    ModeBar { height: 1; background: $panel; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__(bar_markup(bar_items(current, 10_000)), markup=True)
        self.current = current
        self._width = 10_000

    def on_resize(self, _event: events.Resize) -> None:
        if self.size.width != self._width:  # the content width: padding excluded
            self._width = self.size.width
            self.update(bar_markup(bar_items(self.current, self._width)))
