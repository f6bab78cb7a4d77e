"""Asked before quitting a stack with work in flight: what happens to it, and a way to wait for it. A stack
the panel started as a process of its own (`stalk`) can also be left running without the panel."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from stalk.embedded import Unfinished

Answer = Literal["wait", "now", "leave", "cancel"]
LEAVE_DETAIL = ("Leave running: the stack goes on without the panel; `stalk attach` comes back to it, "
                "`stalk down` stops it.")


def question(work: Unfinished) -> str:
    counts = [f"{work.running} running" if work.running else "",
              f"{work.held} held by workers" if work.held else "",
              f"{work.queued} queued" if work.queued else ""]
    return f"Quit Stalk with {', '.join(c for c in counts if c)} task(s)?"


class QuitScreen(ModalScreen[str]):
    """Dismisses with "wait" (finish the running tasks, take no new ones, then quit), "now", "cancel" or, with
    `can_leave`, "leave" (the stack keeps running: detached)."""

    BINDINGS = [
        Binding("w", "answer('wait')", "Wait", id="quit.wait"),
        Binding("l", "answer('leave')", "Leave running", id="quit.leave"),
        Binding("q,ctrl+q", "answer('now')", "Quit now", id="quit.now"),
        Binding("n,escape", "answer('cancel')", "Cancel", id="quit.cancel"),
    ]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 72; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    QuitScreen.leave > Vertical { width: 84; max-width: 100%; }
    QuitScreen Label { width: 1fr; }
    QuitScreen #question { text-style: bold; margin-bottom: 1; }
    QuitScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    QuitScreen Button { margin-left: 2; }
    """

    def __init__(self, work: Unfinished, grace: float, can_leave: bool = False) -> None:
        super().__init__()
        self.work = work
        self.grace = grace
        self.can_leave = can_leave
        if can_leave:
            self.add_class("leave")

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.can_leave:
                yield from self._stop_or_leave()
            else:
                yield Label(question(self.work), id="question", markup=False)
                yield Label(f"Quitting now: {self.work.fate(self.grace)}.", id="detail", markup=False)
            if self.work.running:
                then = "the stack stops" if self.can_leave else "Stalk quits"
                yield Label(f"Wait: the workers finish what they run and take nothing new, then {then}.",
                            id="wait-detail", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="cancel")
                if self.work.running:
                    label = "Wait (w)" if self.can_leave else "Wait for running (w)"
                    yield Button(label, variant="primary", id="wait")
                if self.can_leave:
                    yield Button("Leave running (l)", variant="success", id="leave")
                    yield Button("Stop (q)", variant="error", id="now")
                else:
                    yield Button("Quit now (q)", variant="error", id="now")

    def _stop_or_leave(self) -> ComposeResult:
        ask = question(self.work).removesuffix("?") if self.work.any else "Quit Stalk"
        yield Label(f"{ask}: stop the stack it started, or leave it running?", id="question", markup=False)
        fate = self.work.fate(self.grace) if self.work.any else "workers and beat warm-stop, then the broker"
        yield Label(f"Stop: {fate}.", id="detail", markup=False)
        yield Label(LEAVE_DETAIL, id="leave-detail", markup=False)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_answer(self, answer: Answer) -> None:
        if (answer == "wait" and not self.work.running) or (answer == "leave" and not self.can_leave):
            return
        self.dismiss(answer)
