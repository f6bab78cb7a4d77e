"""The footer: the current screen's shown bindings as one line of clickable keys.

Textual's Footer rebuilds one widget per key on every focus change, and in Textual 8.2.8 the removed
ones stayed reachable: bench/panel_load.py counted 1,400 dead FooterKeys after 150 s of typing, and
every full garbage collection walked them (pauses grew past 250 ms). This bar is one Static whose
text is re-rendered instead; the keys come from the same bindings (panel/actions.py registry)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.screen import Screen
from textual.widgets import Static

from ..markup_text import escape

GAP = "  "


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

    def _show_keys(self) -> None:
        text, self._spans = self.layout_for(self.screen)
        if text != self._text:
            self._text = text
            self.update(text, layout=False)  # one line, docked: its size never changes

    def layout_for(self, screen: Screen) -> tuple[str, list[tuple[int, int, str]]]:
        """Markup of `key description` for each shown binding (one per action, in binding order), and
        where each sits."""
        parts: list[str] = []
        spans: list[tuple[int, int, str]] = []
        actions: set[str] = set()
        x = 0
        for _node, binding, enabled, _tooltip in screen.active_bindings.values():
            if not binding.show or binding.action in actions:
                continue
            actions.add(binding.action)
            key = self.app.get_key_display(binding)
            look = "" if enabled else "dim "
            parts.append(f"[{look}b $accent]{escape(key)}[/] [{look}$foreground]{escape(binding.description)}[/]")
            width = cell_len(key) + 1 + cell_len(binding.description)
            spans.append((x, x + width, binding.key.split(",")[0]))
            x += width + len(GAP)
        return GAP.join(parts), spans

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for start, end, key in self._spans:
            if start <= offset.x < end:
                self.app.simulate_key(key)
                return
