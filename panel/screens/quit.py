"""Asked before quitting a stack with work in flight: what happens to it, and a way to wait for it."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from stalk.embedded import Unfinished

Answer = Literal["wait", "now", "cancel"]


def question(work: Unfinished) -> str:
    counts = [f"{work.running} running" if work.running else "",
              f"{work.held} held by workers" if work.held else "",
              f"{work.queued} queued" if work.queued else ""]
    return f"Quit Stalk with {', '.join(c for c in counts if c)} task(s)?"


class QuitScreen(ModalScreen[str]):
    """Dismisses with "wait" (finish the running tasks, take no new ones, then quit), "now" or "cancel"."""

    BINDINGS = [
        Binding("w", "answer('wait')", "Wait", id="quit.wait"),
        Binding("q,ctrl+q", "answer('now')", "Quit now", id="quit.now"),
        Binding("n,escape", "answer('cancel')", "Cancel", id="quit.cancel"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 72; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    QuitScreen Label { width: 1fr; }
    QuitScreen #question { text-style: bold; margin-bottom: 1; }
    QuitScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    QuitScreen Button { margin-left: 2; }
    """

    def __init__(self, work: Unfinished, grace: float) -> None:
        super().__init__()
        self.work = work
        self.grace = grace

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(question(self.work), id="question", markup=False)
            yield Label(f"Quitting now: {self.work.fate(self.grace)}.", id="detail", markup=False)
            if self.work.running:
                yield Label("Wait: the workers finish what they run and take nothing new, then Stalk quits.",
                            id="wait-detail", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="cancel")
                if self.work.running:
                    yield Button("Wait for running (w)", variant="primary", id="wait")
                yield Button("Quit now (q)", variant="error", id="now")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_answer(self, answer: Answer) -> None:
        if answer == "wait" and not self.work.running:
            return
        self.dismiss(answer)
