"""The Textual app: starts the stack in a worker and shows it (screens fill in from here)."""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from embedded import BrokerError, ConfigError, Stack, StackConfig, StackLockedError


class StalkApp(App):
    TITLE = "Stalk"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, config: StackConfig) -> None:
        super().__init__()
        self.config = config
        self.stack: Stack | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("starting the stack...", id="broker")
        yield DataTable(id="processes")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("process", "state", "pid", "restarts", "queues")
        self.start_stack()

    @work(thread=True, exclusive=True, group="stack")
    def start_stack(self) -> None:
        try:
            stack = Stack(self.config)
            stack.start(wait=False)
        except (BrokerError, ConfigError, StackLockedError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=30)
            return
        self.stack = stack
        self.call_from_thread(self.set_interval, 0.5, self.refresh_processes)

    def refresh_processes(self) -> None:
        if self.stack is None or self.stack.broker is None:
            return
        self.query_one("#broker", Static).update(f"{self.stack.broker.mode}: {self.stack.broker.durability}")
        table = self.query_one(DataTable)
        table.clear()
        for p in self.stack.processes():
            table.add_row(p.name, str(p.state), str(p.pid or "-"), str(p.restarts), ",".join(p.queues))

    def on_unmount(self) -> None:
        if self.stack is not None:
            self.stack.stop()


def run_panel(config: StackConfig) -> None:
    StalkApp(config).run()
