"""Beat: the schedule's entries with last/next run and total runs; run one now (n or enter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Label, Static

from stalk.panel.actions import bindings
from stalk.panel.beat_rows import BeatRow, ago
from stalk.panel.markup_text import escape
from stalk.panel.screens.polled import PolledScreen
from stalk.panel.widgets.beat_table import BeatTable

HOW_TO = """Beat sends tasks on a schedule declared in the Celery app:

[$accent]from celery.schedules import crontab

app.conf.beat_schedule = {
    "cleanup-nightly": {"task": "app.cleanup", "schedule": crontab(hour=3, minute=0)},
    "poll-feeds": {"task": "app.poll", "schedule": 30.0, "args": ("rss",)},
}[/]

Entries show here with their last and next run; n or enter sends one now."""


@dataclass
class BeatData:
    rows: list[BeatRow] = field(default_factory=list)
    has_control: bool = False
    problem: str | None = None


def fetch_beat(stack: Any) -> BeatData:
    control = getattr(stack, "control", None)
    if control is None:
        return BeatData()
    try:
        entries = list(control.beat_entries())
    except Exception as exc:  # shown in the status line; the last rows stay on screen
        return BeatData(has_control=True, problem=f"schedule: {exc}")
    return BeatData([BeatRow.of(e) for e in entries], True)


class BeatScreen(PolledScreen):
    SCOPE = "beat"
    BINDINGS = bindings("beat")
    CSS_PATH = "../styles/beat.tcss"

    def compose_body(self) -> ComposeResult:
        yield Label(id="beat-status")
        yield BeatTable(id="beat-table")
        yield Static(HOW_TO, id="beat-empty")

    def on_mount(self) -> None:
        self.data = BeatData()
        super().on_mount()
        self.query_one(BeatTable).focus()
        self._show_status()

    def fetch(self) -> BeatData:
        return fetch_beat(self.stack)

    def draw(self, data: BeatData) -> None:
        if data.problem is not None:
            data.rows = self.data.rows  # keep what we had: an error hides nothing
        self.data = data
        self.query_one(BeatTable).show_entries(data.rows, self.app.clock(), self.app.get_css_variables())  # type: ignore[attr-defined]
        empty = data.has_control and not data.rows and data.problem is None
        self.query_one("#beat-empty").display = empty
        self.query_one(BeatTable).set_class(empty, "-empty")
        self._show_status()

    def _beat_process(self) -> str:
        beat = next((p for p in self.app.processes if p.role == "beat"), None)  # type: ignore[attr-defined]
        if beat is not None:
            return f"beat process [b]{beat.state}[/b]"
        config = getattr(self.stack, "config", None)
        if config is not None and not config.beat_enabled():
            return "[$foreground-muted]beat is off for this stack (run now still works)[/]"
        return "[$foreground-muted]no beat process[/]"

    def _show_status(self) -> None:
        d = self.data
        if self.stack is None:
            text = "[$foreground-muted]waiting for the stack[/]"
        elif not d.has_control:
            text = "[$foreground-muted]no control API on this stack: the schedule is unavailable[/]"
        elif d.problem and not d.rows:
            text = f"schedule unavailable   {self._beat_process()}"
        else:
            text = f"[b]{len(d.rows)}[/b] schedule entries   {self._beat_process()}"
            if d.rows and not d.problem:
                text += "   [$foreground-muted]n or enter runs the selected entry now[/]"
            elif d.problem is None:
                text += "   [$foreground-muted]the app defines no beat_schedule[/]"
        failing = [r for r in d.rows if r.error is not None]
        if failing:
            more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
            first, now = failing[0], self.app.clock()  # type: ignore[attr-defined]
            text += (f"\n[$error]{escape(first.name)}: send failed {ago(first.failed_at, now)}: "
                     f"{escape(first.error or '')}{more}[/]")
        if d.problem:
            text += f"   [$error]{escape(d.problem)}[/]"
        self.query_one("#beat-status", Label).update(text)

    # -- run now --------------------------------------------------------------------------------

    def action_run_now(self) -> None:
        name = self.query_one(BeatTable).selected
        control = getattr(self.stack, "control", None)
        if name is None:
            self.notify("no schedule entry selected", severity="warning")
        elif control is None:
            self.notify("no control API on this stack", severity="error")
        else:
            self.call(f"run {name}", lambda: control.run_beat_entry(name),
                      lambda result: f"sent {name} now (task {getattr(result, 'id', result)})")

    @on(BeatTable.RowSelected)
    def _enter(self) -> None:
        self.action_run_now()
