"""Worker detail: one worker as it describes itself (pool, prefetch, broker, queues), the tasks it holds
(running, prefetched, due later; enter opens one), what it has processed and its resource usage.
Asked again every POLL_EVERY seconds while shown, on a thread worker."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, Static

from stalk.embedded.control import WorkerReport
from stalk.panel.actions import bindings
from stalk.panel.formatting import duration, size
from stalk.panel.markup_text import escape
from stalk.panel.widgets.held_table import HeldTable
from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.mode_bar import ModeBar
from stalk.panel.widgets.stack_banner import StackBanner

POLL_EVERY = 2.0
REPORT_TIMEOUT = 1.0


def summary_text(report: WorkerReport | None, hostname: str, process: str | None) -> str:
    """The header: who it is and how it runs."""
    run_by = f"  [$foreground-muted]run by Stalk as[/] {escape(process)}" if process else \
        "  [$foreground-muted]not run by Stalk[/]"
    head = f"[b]{escape(hostname)}[/b]{run_by}"
    if report is None:
        return f"{head}\n[$foreground-muted]asking the worker…[/]"
    if not report.answered:
        problems = "; ".join(report.problems)
        why = f": {escape(problems)}" if problems else f" within {REPORT_TIMEOUT:.0f} s (down, or too busy to answer)"
        return f"{head}\n[$error]no answer[/]{why}"
    pool = f"{report.pool or '?'} × {report.concurrency or '?'}"
    pids = ", ".join(str(p) for p in report.processes) or "-"
    lines = [
        head,
        f"pid [b]{report.pid or '-'}[/b]  up [b]{duration(report.uptime)}[/b]  pool [b]{escape(pool)}[/b] "
        f"(processes {pids})  prefetch [b]{report.prefetch if report.prefetch is not None else '-'}[/b]",
        f"broker {escape(report.broker or '-')}   queues [b]{escape(', '.join(report.queues) or '-')}[/b]",
    ]
    if report.rusage:
        cpu = report.rusage.get("utime", 0.0) + report.rusage.get("stime", 0.0)
        rss = size(int(report.rusage.get("maxrss", 0.0) * 1024))
        lines.append(f"[$foreground-muted]main process: cpu {duration(cpu)}, max rss {rss}[/]")
    lines += [f"[$error]{escape(p)}[/]" for p in report.problems]
    return "\n".join(lines)


def counts_text(report: WorkerReport | None) -> str:
    """Processed per task since the worker started, busiest first, then what it can run."""
    if report is None or not report.answered:
        return ""
    done = sorted(report.processed.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["[b]Processed since it started[/b]"]
    lines += [f"{n:>8,}  {escape(name)}" for name, n in done] or ["[$foreground-muted]nothing yet[/]"]
    lines += ["", f"[b]Registered[/b] ({len(report.registered)})"]
    lines += [escape(name) for name in report.registered] or ["[$foreground-muted]none[/]"]
    return "\n".join(lines)


class WorkerDetailScreen(Screen):
    SCOPE = "worker"
    BINDINGS = bindings("worker")
    CSS_PATH = "../styles/worker_detail.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # counts under the tasks below 100 columns

    class Fetched(Message):
        def __init__(self, report: WorkerReport) -> None:
            super().__init__()
            self.report = report

    def __init__(self, hostname: str, process: str | None = None) -> None:
        super().__init__()
        self.hostname = hostname
        self.process = process
        self.report: WorkerReport | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar(self.app.current_mode)
        yield StackBanner()
        yield Static(summary_text(None, self.hostname, self.process), id="worker-summary")
        with Horizontal(id="worker-body"):
            with Vertical(id="worker-tasks"):
                yield Label("[b]Tasks it holds[/b]  [$foreground-muted]enter opens one[/]", id="held-title")
                yield HeldTable(id="held-table")
            yield Static(id="worker-counts")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(HeldTable).focus()
        self.fetch()

    @property
    def stack(self) -> Any:
        return getattr(self.app, "stack", None)

    @work(thread=True, exclusive=True, group="worker-report", exit_on_error=False)
    def fetch(self) -> None:
        control = getattr(self.stack, "control", None)
        if control is None:
            report = WorkerReport(self.hostname, answered=False, problems=("no control API on this stack",))
        else:
            report = control.worker_report(self.hostname, timeout=REPORT_TIMEOUT)
        self.post_message(self.Fetched(report))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        self.draw(message.report)
        self.set_timer(POLL_EVERY, self._tick)

    def _tick(self) -> None:
        if self.is_attached and self.is_current:
            self.fetch()
        elif self.is_attached:  # covered by a task's detail: ask again once it is back on top
            self.set_timer(POLL_EVERY, self._tick)

    def draw(self, report: WorkerReport) -> None:
        self.report = report
        self.query_one("#worker-summary", Static).update(summary_text(report, self.hostname, self.process))
        held = [("active", t) for t in report.active] + [("reserved", t) for t in report.reserved] + \
            [("scheduled", t) for t in report.scheduled]
        variables = self.app.get_css_variables()
        self.query_one(HeldTable).show_held(held, self.app.clock(), variables)  # type: ignore[attr-defined]
        counts = len(report.active), len(report.reserved), len(report.scheduled)
        said = f"{counts[0]} running, {counts[1]} prefetched, {counts[2]} due later  [$foreground-muted]enter " \
            "opens one[/]" if report.answered else "[$foreground-muted]unknown until it answers[/]"
        self.query_one("#held-title", Label).update(f"[b]Tasks it holds[/b]  {said}")
        self.query_one("#worker-counts", Static).update(counts_text(report))

    @on(HeldTable.RowSelected)
    def _open(self, event: HeldTable.RowSelected) -> None:
        self._open_task(str(event.row_key.value))

    def action_open_task(self) -> None:
        task_id = self.query_one(HeldTable).selected
        if task_id is None:
            self.notify("no task selected", severity="warning")
        else:
            self._open_task(task_id)

    def _open_task(self, task_id: str) -> None:
        """On top of this screen, so esc comes back to the worker."""
        from stalk.panel.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(task_id))

    def action_back(self) -> None:
        self.dismiss()
