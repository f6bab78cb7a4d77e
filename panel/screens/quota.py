"""Quota: per quota today's used/reserve/remaining, hourly usage, forecast, reset, request log, history.

←/→ switch quotas. Read-only: the ledger is written by metered tasks, never from here.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Static

from stalk.panel.actions import bindings
from stalk.panel.markup_text import escape
from stalk.panel.quota_data import QuotaData, fetch_quota
from stalk.panel.screens.polled import PolledScreen
from stalk.panel.widgets.hourly_chart import HourlyChart
from stalk.panel.widgets.quota_history import QuotaHistory
from stalk.panel.widgets.quota_summary import QuotaSummary
from stalk.panel.widgets.request_log import RequestLog

HOW_TO = """[b]No quotas yet.[/b] Declare daily quotas in the Celery app and charge them from tasks:

[$accent]from embedded.quota import metered

app.conf.stalk_quotas = {"openai": {"daily_limit": 10_000, "priority_reserve": 500}}

@app.task(bind=True)
@metered("openai", units=1)
def ask(self, prompt, priority=False): ...[/]

Each run is charged once per task id. Here you then see today's use, the hourly rate, when the quota
runs out at that rate, the reset time, every request, and the last 14 days."""


def tabs(data: QuotaData) -> str:
    parts = []
    for s in data.statuses:
        name = escape(s.name)
        mark = "[$error]●[/]" if s.exhausted else ("[$warning]●[/]" if s.exhausted_at else "[$success]●[/]")
        parts.append(f"[reverse b] {name} [/] {mark}" if s.name == data.current else f" {name}  {mark}")
    return "  ".join(parts)


class QuotaScreen(PolledScreen):
    SCOPE = "quota"
    BINDINGS = bindings("quota")
    CSS_PATH = "../styles/quota.tcss"

    def compose_body(self) -> ComposeResult:
        yield Label(id="quota-tabs")
        yield Static(id="quota-empty")
        yield QuotaSummary(id="quota-summary")
        with Horizontal(id="quota-charts"):
            yield HourlyChart(id="quota-hourly")
            yield QuotaHistory(id="quota-history")
        yield Label("[b]Requests[/b]  [$foreground-muted]newest first[/]", id="quota-log-title",
                    classes="section-title")
        yield RequestLog(id="quota-log")

    def on_mount(self) -> None:
        self.data = QuotaData()
        self.wanted: str | None = None
        super().on_mount()
        self.query_one(RequestLog).focus()
        self.draw(self.data)

    def fetch(self) -> QuotaData:
        return fetch_quota(self.stack, self.wanted)

    def draw(self, data: QuotaData) -> None:
        if data.problem and data.statuses == [] and self.data.statuses:
            data = QuotaData(True, self.data.statuses, self.data.current, self.data.requests, self.data.history,
                             data.problem)  # keep the last numbers on screen; say what failed
        self.data = data
        status = data.status()
        self.query_one("#quota-tabs", Label).update(self._tabs_text())
        has = status is not None
        for widget in ("#quota-summary", "#quota-charts", "#quota-log-title", "#quota-log"):
            self.query_one(widget).display = has
        empty = self.query_one("#quota-empty", Static)
        empty.display = not has and self.stack is not None
        if not has:
            empty.update(HOW_TO if not data.problem else "[$foreground-muted]The quota screen reads the ledger "
                         "again every few seconds: fix the file and it comes back here.[/]")
            return
        now = self.app.clock()  # type: ignore[attr-defined]
        self.query_one(QuotaSummary).show(status, now)
        start = status.starts_at  # the quota day's real start (23 h and 25 h days across DST)
        hour = int((now - start.timestamp()) // 3600)
        self.query_one(HourlyChart).show(list(status.hourly), hour if 0 <= hour < 24 else None, start.hour,
                                         f"Today by hour ({status.timezone})")
        self.query_one(QuotaHistory).show(data.history, status.limit)
        self.query_one(RequestLog).show_requests(data.requests, self.app.get_css_variables())

    def _tabs_text(self) -> str:
        d = self.data
        parts = []
        if self.stack is None:
            parts.append("[$foreground-muted]waiting for the stack[/]")
        elif d.statuses:
            parts.append(tabs(d) + ("   [$foreground-muted]← → switch[/]" if len(d.statuses) > 1 else ""))
        elif not d.problem:
            parts.append("[$foreground-muted]no quota ledger on this stack yet[/]" if not d.available
                         else "[$foreground-muted]the ledger defines no quotas[/]")
        if d.problem:
            parts.append(f"[$error]{escape(d.problem)}[/]")
        return "   ".join(parts)

    def _step(self, by: int) -> None:
        names = [s.name for s in self.data.statuses]
        if len(names) < 2:
            return
        current = names.index(self.data.current) if self.data.current in names else 0
        self.wanted = names[(current + by) % len(names)]
        self.data.current = self.wanted
        self.query_one("#quota-tabs", Label).update(self._tabs_text())
        self.poll_soon(0.01)

    def action_previous_quota(self) -> None:
        self._step(-1)

    def action_next_quota(self) -> None:
        self._step(1)
