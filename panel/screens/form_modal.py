"""A small input modal (rate limit, autoscale): a few labelled fields, checked before anything is sent.

`check(values)` returns the parsed result or raises ValueError with one line for the user; the modal
stays open showing that line, so a typo loses nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label

from stalk.panel.markup_text import escape


@dataclass(frozen=True)
class FormField:
    key: str
    label: str
    value: str = ""
    placeholder: str = ""
    suggestions: tuple[str, ...] = ()


class FormScreen(ModalScreen[Any]):
    """Dismisses with check(values) on enter/OK, with None on escape/Cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="form.cancel")]
    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical { width: 64; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    FormScreen Label { width: 1fr; }  /* long titles and notes wrap inside the border */
    FormScreen #form-title { text-style: bold; margin-bottom: 1; }
    FormScreen #form-note { color: $foreground-muted; margin-bottom: 1; }
    FormScreen .form-label { margin-top: 1; }
    FormScreen #form-error { color: $error; width: 1fr; height: auto; margin-top: 1; }
    FormScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    FormScreen Button { margin-left: 2; }
    """

    def __init__(self, title: str, fields: Sequence[FormField], check: Callable[[dict[str, str]], Any],
                 note: str = "", ok: str = "OK") -> None:
        super().__init__()
        self.title_text = title
        self.fields = list(fields)
        self.check = check
        self.note = note
        self.ok = ok

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="form-title", markup=False)  # names a worker as written
            if self.note:
                yield Label(self.note, id="form-note", markup=False)
            for f in self.fields:
                yield Label(f.label, classes="form-label")
                suggester = SuggestFromList(f.suggestions, case_sensitive=False) if f.suggestions else None
                yield Input(f.value, placeholder=f.placeholder, id=f"field-{f.key}", suggester=suggester)
            yield Label("", id="form-error")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button(f"{self.ok} (enter)", variant="primary", id="ok")

    def values(self) -> dict[str, str]:
        return {f.key: self.query_one(f"#field-{f.key}", Input).value.strip() for f in self.fields}

    def action_submit(self) -> None:
        try:
            result = self.check(self.values())
        except ValueError as exc:
            self.query_one("#form-error", Label).update(escape(str(exc)))
            return
        self.dismiss(result)

    @on(Input.Submitted)
    def _entered(self) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
