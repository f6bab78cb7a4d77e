"""The footer: the current screen's shown bindings as one line of clickable keys.

Textual's Footer rebuilds one widget per key on every focus change, and in Textual 8.2.8 the removed
ones stayed reachable: bench/panel_load.py counted 1,400 dead FooterKeys after 150 s of typing, and
every full garbage collection walked them (pauses grew past 250 ms). This bar is one Static whose
text is re-rendered instead; the keys come from the same bindings (panel/actions.py registry)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from stalk.panel.markup_text import escape

GAP = "  "
Key = tuple[str, str, bool, str, str]  # key shown, description, enabled, action, key to press


def _width(keys: list[Key], gap: str) -> int:
    return sum(cell_len(k) + 1 + cell_len(d) for k, d, *_ in keys) + len(gap) * max(0, len(keys) - 1)


def _layout(keys: list[Key], gap: str) -> tuple[str, list[tuple[int, int, str]]]:
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    x = 0
    for key, description, enabled, _action, press in keys:
        look = "" if enabled else "dim "
        parts.append(f"[{look}b $accent]{escape(key)}[/] [{look}$foreground]{escape(description)}[/]")
        width = cell_len(key) + 1 + cell_len(description)
        spans.append((x, x + width, press))
        x += width + len(gap)
    return gap.join(parts), spans


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; width: 1fr; background: $footer-background; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__("", markup=True)
        self._text = ""
        self._spans: list[tuple[int, int, str]] = []  # start, end cell, key to press

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._show_keys()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is self.screen:
            self.call_after_refresh(self._show_keys)

    def on_resize(self, _event: events.Resize) -> None:
        self._show_keys()

    def _show_keys(self) -> None:
        if not self.is_attached:  # a refresh queued before its screen was closed runs after it
            return
        text, self._spans = self.layout_for(self.screen, self.size.width or 10_000)
        if text != self._text:
            self._text = text
            self.update(text, layout=False)  # one line, docked: its size never changes

    def layout_for(self, screen: Screen, width: int = 10_000) -> tuple[str, list[tuple[int, int, str]]]:
        """Markup of `key description` for each shown binding (one per action, in binding order), and
        where each sits. What does not fit `width` is left out from the right, but `? Help` (which
        lists every key) stays: with narrower gaps first, then fewer keys."""
        keys = self.shown_keys(screen)
        for gap in (GAP, " "):
            if _width(keys, gap) <= width:
                return _layout(keys, gap)
        helps = [k for k in keys if k[3] == "help"]
        others = [k for k in keys if k[3] != "help"]
        while others and _width(others + helps, " ") > width:
            others.pop()
        return _layout(others + helps, " ")

    def shown_keys(self, screen: Screen) -> list[Key]:
        """One Key per shown binding (the first binding of each action). A focused table's hidden
        `enter` (select the row) shadows the screen's shown one, which its RowSelected handler runs:
        the screen's is what the key does, so the bar shows it, after the screen's other keys."""
        own = {k.strip(): b for b in screen.BINDINGS if isinstance(b, Binding) and b.show for k in b.key.split(",")}
        shown: list[tuple[Binding, bool]] = []
        shadowed: list[tuple[Binding, bool]] = []
        for key, (node, binding, enabled, _tooltip) in screen.active_bindings.items():
            if not binding.show and node is not screen and key in own:
                shadowed.append((own[key], enabled))
            elif node is screen.app and shadowed:
                shown += shadowed
                shadowed = []
            shown.append((binding, enabled))
        keys: list[Key] = []
        actions: set[str] = set()
        for binding, enabled in shown + shadowed:
            if not binding.show or binding.action in actions:
                continue
            actions.add(binding.action)
            keys.append((self.app.get_key_display(binding), binding.description, enabled, binding.action,
                         binding.key.split(",")[0]))
        return keys

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for start, end, key in self._spans:
            if start <= offset.x < end:
                self.app.simulate_key(key)
                return
