"""Dashboard: supervised processes with restart/stop/start, broker durability, queues, activity, quota."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label

from stalk.panel.actions import bindings
from stalk.panel.dashboard_data import DashboardData, fetch_dashboard
from stalk.panel.messages import LogsShow
from stalk.panel.quota_access import open_ledger
from stalk.panel.screens.base import StalkScreen
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.widgets.activity import Activity
from stalk.panel.widgets.broker_line import BrokerLine
from stalk.panel.widgets.process_table import ProcessTable
from stalk.panel.widgets.queue_depths import QueueDepths
from stalk.panel.widgets.quota_meter import QuotaMeter
from stalk.panel.widgets.recent_failures import RecentFailures

POLL_EVERY = 1.0
NO_PROCESSES = {
    "external": "Stalk is attached to an external broker and runs no process: the workers that answer are on "
                "Workers (3).",
    "eager": "Eager mode runs every task inside Stalk: no broker, worker or beat process.",
}


class DashboardScreen(StalkScreen):
    SCOPE = "dashboard"
    BINDINGS = bindings("dashboard")
    CSS_PATH = "../styles/dashboard.tcss"

    class Fetched(Message):
        def __init__(self, data: DashboardData) -> None:
            super().__init__()
            self.data = data

    def compose_body(self) -> ComposeResult:
        yield BrokerLine(id="broker")
        yield ProcessTable(id="processes")
        yield Label(id="no-processes")
        with Horizontal(id="lower"):
            with Vertical(id="left"):
                yield Activity(id="activity")
                yield QueueDepths(id="queues")
            with Vertical(id="right"):
                yield QuotaMeter(id="quota")
                yield RecentFailures(id="failures")

    def on_mount(self) -> None:
        self._polling = False
        self.watch(self.app, "processes", self._show_processes)
        self.watch(self.app, "theme", lambda _t: self._show_processes(self.app.processes))  # type: ignore[attr-defined]
        self.watch(self.app, "phase", lambda _p: self._phase_changed())
        self.query_one(ProcessTable).focus()

    def _show_processes(self, snapshot: tuple) -> None:
        table = self.query_one(ProcessTable)
        table.show(snapshot, self.app.clock(), self.app.get_css_variables())  # type: ignore[attr-defined]
        ready = self.app.phase.kind == "ready"  # type: ignore[attr-defined]
        why = NO_PROCESSES.get(getattr(self.stack, "mode", None) or "", "") if ready and not snapshot else ""
        label = self.query_one("#no-processes", Label)
        label.update(f"[$foreground-muted]{why}[/]")
        label.display = bool(why)

    def _phase_changed(self) -> None:
        self._show_processes(self.app.processes)  # type: ignore[attr-defined]
        self._start_polling()

    # -- polling (dolphie: the next poll is scheduled when the last one finished) ---------------

    def _start_polling(self) -> None:
        if not self._polling and self.stack is not None and self.stack.broker is not None:
            self._polling = True
            self.poll()

    @work(thread=True, exclusive=True, group="dashboard-poll", exit_on_error=False)
    def poll(self) -> None:
        stack = self.stack
        try:
            ledger = open_ledger(stack)
        except Exception:  # a corrupt/locked quota db (the Quota screen says why) must not stop polling
            ledger = None
        try:
            data = fetch_dashboard(stack, ledger)
        finally:
            if ledger is not None:
                ledger.close()  # else each poll's connection stays open until a full collection
        self.post_message(self.Fetched(data))

    @on(Fetched)
    def _draw(self, message: Fetched) -> None:
        data = message.data
        stack = self.stack
        has_events = getattr(stack, "events", None) is not None
        self.query_one(Activity).show(data.throughput, data.failures, data.counts, has_events)
        self.query_one(QueueDepths).show(data.depths, getattr(stack, "control", None) is not None)
        self.query_one(QuotaMeter).show(data.quotas, data.quotas is not None)
        self.query_one(RecentFailures).show(data.recent)
        self.set_timer(POLL_EVERY, self._tick)

    def _tick(self) -> None:
        """Polls only while shown: a hidden Dashboard keeps its last numbers and costs nothing."""
        if self.is_current:
            self.poll()
        else:
            self.set_timer(POLL_EVERY, self._tick)

    # -- process actions ------------------------------------------------------------------------

    def _selected(self) -> str | None:
        name = self.query_one(ProcessTable).selected
        if name is None:
            self.notify("no process selected", severity="warning")
        return name

    def _act(self, verb: str, name: str) -> None:
        stack = self.stack
        if stack is None:  # the actions ask for a stack first
            return
        fn = {"restart": stack.restart_process, "stop": stack.stop_process,
              "start": stack.start_process, "kill": stack.kill_process}[verb]
        self.app.run_stack_action(f"{verb} {name}", lambda: fn(name), f"{verb}: {name}")  # type: ignore[attr-defined]

    def action_restart(self) -> None:
        if (name := self._selected()) and self.stack is not None:
            self._act("restart", name)

    def action_start(self) -> None:
        if (name := self._selected()) and self.stack is not None:
            self._act("start", name)

    def action_stop(self) -> None:
        self._confirmed("stop", "Stop {name}?", "It stays stopped until you start it (g).")

    def action_kill(self) -> None:
        self._confirmed("kill", "Kill {name} (SIGKILL)?", "As a crash would: the supervisor restarts it.")

    def _confirmed(self, verb: str, question: str, detail: str) -> None:
        name = self._selected()
        if name is None or self.stack is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(verb, name)

        self.app.push_screen(ConfirmScreen(question.format(name=name), detail, yes=verb.title()), answered)

    @on(ProcessTable.RowSelected)
    def _row_selected(self) -> None:
        """enter on the focused table (its own binding) does what the screen's enter says."""
        self.action_logs()

    def action_logs(self) -> None:
        name = self.query_one(ProcessTable).selected
        self.app.switch_mode("logs")
        if name:
            self.app.screen.post_message(LogsShow(name))

