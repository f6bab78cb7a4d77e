"""Workers: each Celery worker (pool, load, heartbeat) with pool/rate-limit/restart/shutdown; queues with purge.

Polled (the next poll is scheduled when the last one finished); every stack call runs on a thread worker
and comes back as a message or a notice.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Label

from stalk.panel.actions import bindings
from stalk.panel.markup_text import escape
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.screens.form_modal import FormField, FormScreen
from stalk.panel.screens.polled import PolledScreen
from stalk.panel.screens.worker_detail import WorkerDetailScreen
from stalk.panel.widgets.queue_table import QueueTable
from stalk.panel.widgets.worker_table import WorkerTable
from stalk.panel.worker_forms import Autoscale, RateLimit, check_autoscale, check_rate_limit
from stalk.panel.workers_data import WorkerRow, WorkersData, fetch_workers


def merged(problems: list[str]) -> list[str]:
    """`a: boom`, `b: boom` -> `a, b: boom` (one broken broker fails several calls the same way)."""
    by_cause: dict[str, list[str]] = {}
    for problem in problems:
        part, _, cause = problem.partition(": ")
        by_cause.setdefault(cause, []).append(part)
    return [f"{', '.join(parts)}: {cause}" if cause else ", ".join(parts) for cause, parts in by_cause.items()]


def plural(n: int | None, noun: str) -> str:
    if n is None:
        return f"all {noun}s"
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


class WorkersScreen(PolledScreen):
    SCOPE = "workers"
    BINDINGS = bindings("workers")
    CSS_PATH = "../styles/workers.tcss"

    def compose_body(self) -> ComposeResult:
        yield Label(id="workers-status")
        yield Label("[b]Workers[/b]  [$foreground-muted]enter shows one in full[/]", classes="section-title")
        yield WorkerTable(id="worker-table")
        yield Label("[b]Queues[/b]  [$foreground-muted]tab selects a queue, p purges it[/]", classes="section-title")
        yield QueueTable(id="queue-table")

    def on_mount(self) -> None:
        self.data = WorkersData()
        super().on_mount()
        self.query_one(WorkerTable).focus()
        self._show_status()

    @property
    def control(self) -> Any:
        return getattr(self.stack, "control", None)

    def fetch(self) -> WorkersData:
        return fetch_workers(self.stack, list(self.app.processes))  # type: ignore[attr-defined]

    def draw(self, data: WorkersData) -> None:
        self.data = data
        variables = self.app.get_css_variables()
        self.query_one(WorkerTable).show_workers(data.workers, self.app.clock(), variables)  # type: ignore[attr-defined]
        self.query_one(QueueTable).show_queues(data.queues, variables)
        self._show_status()

    def _show_status(self) -> None:
        d = self.data
        if self.stack is None:
            text = "[$foreground-muted]waiting for the stack[/]"
        elif not d.loaded:
            text = "[$foreground-muted]asking the workers…[/]"
        else:
            online = sum(1 for w in d.workers if w.online)
            known = [q.waiting for q in d.queues if q.waiting is not None]
            waiting = f"{sum(known):,}" if known or not d.queues else "?"
            text = f"[b]{len(d.workers)}[/b] workers, [b]{online}[/b] online   [b]{waiting}[/b] messages waiting"
            if getattr(self.stack, "mode", None) == "eager" and not d.workers:
                text += "   [$foreground-muted]eager mode: tasks run inside Stalk, no workers or queues[/]"
            if not d.has_events:
                text += "   [$foreground-muted]no event store: live worker stats unavailable[/]"
            if not d.has_control:
                text += "   [$foreground-muted]no control API: actions and queue depths unavailable[/]"
        for problem in merged(d.problems):
            text += f"   [$error]{escape(problem)}[/]"
        self.query_one("#workers-status", Label).update(text)

    # -- running stack calls --------------------------------------------------------------------

    def _need_control(self) -> Any:
        control = self.control
        if control is None:
            self.notify("no control API on this stack", severity="error")
        return control

    def _worker(self) -> WorkerRow | None:
        hostname = self.query_one(WorkerTable).selected
        row = next((w for w in self.data.workers if w.hostname == hostname), None)
        if row is None:
            self.notify("no worker selected", severity="warning")
        return row

    # -- worker actions -------------------------------------------------------------------------

    def action_open_worker(self) -> None:
        if row := self._worker():
            self.app.push_screen(WorkerDetailScreen(row.hostname, row.process))

    @on(WorkerTable.RowSelected)
    def _worker_selected(self) -> None:
        self.action_open_worker()

    def _pool(self, verb: str) -> None:
        if (row := self._worker()) and (control := self._need_control()):
            fn = control.pool_grow if verb == "grow" else control.pool_shrink
            self.call(f"{verb} {row.hostname}", lambda: fn(row.hostname, 1),
                      lambda _r: f"pool {verb} by 1 sent to {row.hostname}")

    def action_grow(self) -> None:
        self._pool("grow")

    def action_shrink(self) -> None:
        self._pool("shrink")

    def action_autoscale(self) -> None:
        row, control = self._worker(), self.control
        if row is None or not self._need_control():
            return
        current = str(row.concurrency or "")
        fields = [FormField("max", "Max processes", current, "e.g. 8"), FormField("min", "Min processes", "1", "e.g. 1")]

        def answered(bounds: Autoscale | None) -> None:
            if bounds is not None:
                self.call(f"autoscale {row.hostname}", lambda: control.autoscale(row.hostname, bounds.max, bounds.min),
                          lambda _r: f"autoscale {bounds.max},{bounds.min} sent to {row.hostname}")

        self.app.push_screen(FormScreen(f"Autoscale {row.hostname}", fields, check_autoscale,
                                        note="Needs a worker started with autoscale enabled.", ok="Set"), answered)

    def action_rate_limit(self) -> None:
        control = self._need_control()
        if control is None:
            return
        known = self.data.task_names
        fields = [FormField("task", "Task", placeholder="task name (→ completes)", suggestions=known),
                  FormField("rate", "Rate", placeholder="10/m   (N, N/s, N/m, N/h; 0 removes the limit)")]

        def answered(limit: RateLimit | None) -> None:
            if limit is not None:
                self.call(f"rate limit {limit.task}", lambda: control.rate_limit(limit.task, limit.rate),
                          lambda _r: f"rate limit {limit.rate} sent for {limit.task}")

        self.app.push_screen(FormScreen("Rate limit a task (all workers)", fields,
                                        lambda v: check_rate_limit(v, known), ok="Set"), answered)

    def action_restart(self) -> None:
        row = self._worker()
        if row is None or self.stack is None:
            return
        if row.process is None:
            self.notify(f"{row.hostname} is not run by Stalk: restart it where it runs", severity="warning")
            return
        name = row.process
        self.app.run_stack_action(f"restart {name}", lambda: self.stack.restart_process(name),  # type: ignore[attr-defined]
                                  f"restart: {name}")

    def action_shutdown(self) -> None:
        row = self._worker()
        if row is None or not (control := self._need_control()):
            return
        detail = ("It finishes its running tasks, then exits; the supervisor restarts it "
                  "(stop it on the Dashboard to keep it down)." if row.process
                  else "Stalk does not run it: nothing will start it again.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.call(f"shutdown {row.hostname}", lambda: control.shutdown(row.hostname),
                          lambda _r: f"shutdown sent to {row.hostname}")

        self.app.push_screen(ConfirmScreen(f"Shut down {row.hostname}?", detail, yes="Shut down"), answered)

    def action_focus_next(self) -> None:
        self.focus_next()

    # -- queue actions --------------------------------------------------------------------------

    def action_purge(self) -> None:
        name = self.query_one(QueueTable).selected
        if name is None:
            self.notify("no queue selected", severity="warning")
            return
        if not (control := self._need_control()):
            return
        waiting = next((q.waiting for q in self.data.queues if q.name == name), None)
        count = "its waiting messages" if waiting is None else plural(waiting, "waiting message")

        def answered(yes: bool | None) -> None:
            if yes:
                self.call(f"purge {name}", lambda: control.purge(name, by="the panel"),
                          lambda n: f"purged {plural(n, 'message')} from {name}")

        self.app.push_screen(ConfirmScreen(f"Purge queue {name}?", f"Deletes {count}; they cannot be recovered.",
                                           yes="Purge"), answered)
