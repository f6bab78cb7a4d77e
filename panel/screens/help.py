"""Help: every key, generated from the action registry (so it never drifts from the bindings)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Label

from stalk.panel.actions import ACTIONS, SCOPE_TITLES, bindings
from stalk.panel.widgets.key_bar import KeyBar


class HelpScreen(Screen):
    SCOPE = "help"
    BINDINGS = bindings("help")

    def __init__(self, current: str | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Label("[b]Keys[/b]  (also in the command palette: [b]:[/b] or [b]ctrl+p[/b]; mouse works too)",
                    id="help-title")
        yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "does")
        order = list(SCOPE_TITLES)
        for action in sorted(ACTIONS, key=lambda a: (a.scope != self.current, order.index(a.scope))):
            style = "bold" if action.scope == self.current else ""
            table.add_row(Text(SCOPE_TITLES[action.scope], style=style), Text(action.keys_label, style="bold"),
                          action.description)
        table.focus()

    def action_back(self) -> None:
        self.dismiss()
