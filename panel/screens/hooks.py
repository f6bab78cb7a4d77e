"""Hooks: alert rules (state, condition, value) and recent alert events; the webhooks of stalk.toml with
their delivery counts, and the outbox's deliveries, newest first: f shows failures only, r sends the
selected delivery now (its hook's back-off is reset), enter opens its task."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Label, Static

from stalk.embedded import printable
from stalk.panel.actions import bindings
from stalk.panel.hooks_access import HooksData, fetch_hooks, retry_delivery
from stalk.panel.markup_text import escape
from stalk.panel.messages import OpenTask
from stalk.panel.screens.polled import PolledScreen
from stalk.panel.widgets.alert_tables import AlertEvents, AlertRules
from stalk.panel.widgets.webhook_tables import DeliveryTable, HookTable, alert_rule, delivery_markup

HOW_TO = """[b]No webhooks configured.[/b] Add a \\[\\[webhooks]] table (url = ...) to stalk.toml:

[$accent]\\[\\[webhooks]]
url = "https://example.com/stalk"
tasks = ["app.*"]                  # task name globs (default: every task)
states = ["SUCCESS", "FAILURE"]    # the default
secret = "..."                     # optional: X-Stalk-Signature, an HMAC of the body[/]

Each task reaching one of those states is POSTed to the URL as JSON, retried until the receiver
answers 2xx. Here you then see every delivery, the failing ones, and can send one again now."""

NO_ALERTS = ("[$foreground-muted]no alerts configured: add \\[\\[alerts]] tables to stalk.toml (kinds: "
             "task_failures, queue_depth, worker_offline, quota)[/]")


class HooksScreen(PolledScreen):
    SCOPE = "hooks"
    BINDINGS = bindings("hooks")
    CSS_PATH = "../styles/hooks.tcss"
    AUTO_FOCUS = ""  # none (None is the app's "*"): draw focuses the deliveries once there is an outbox

    def compose_body(self) -> ComposeResult:
        yield Label(id="hooks-status")
        yield Label("[b]Alerts[/b]", id="alerts-title", classes="section-title")
        yield Static(NO_ALERTS, id="alerts-empty")
        yield AlertRules(id="alert-rules")
        yield AlertEvents(id="alert-events")
        yield Label("[b]Webhooks[/b]", classes="section-title")
        yield Static(HOW_TO, id="hooks-empty")
        yield HookTable(id="hook-table")
        yield Label(id="deliveries-title", classes="section-title")
        yield DeliveryTable(id="delivery-table")
        yield Static(id="delivery-detail")

    def on_mount(self) -> None:
        self.data = HooksData()
        self.failures = False  # only deliveries tried and not acknowledged
        self._had_outbox = False
        super().on_mount()
        self.draw(self.data)

    def fetch(self) -> HooksData:
        return fetch_hooks(self.stack, self.failures)

    def draw(self, data: HooksData) -> None:
        if data.problem:  # keep what we had: an error hides nothing
            data.hooks = data.hooks or self.data.hooks
            data.deliveries = data.deliveries or self.data.deliveries
            data.webhooks = data.webhooks or self.data.webhooks
            data.rules, data.events = data.rules or self.data.rules, data.events or self.data.events
        self.data = data
        variables = self.app.get_css_variables()
        has_alerts = bool(data.rules)
        self.query_one("#alerts-empty").display = data.read and not has_alerts
        self.query_one(AlertRules).display = has_alerts
        self.query_one(AlertEvents).display = has_alerts
        self.query_one(AlertRules).show_rules(data.rules, variables)
        self.query_one(AlertEvents).show_events(data.events)
        self.query_one("#hooks-empty").display = data.read and not data.hooks and not data.problem
        self.query_one(HookTable).display = bool(data.hooks)
        for widget in ("#deliveries-title", "#delivery-table", "#delivery-detail"):
            self.query_one(widget).display = data.webhooks  # an outbox: alerts' notifications use it too
        if data.webhooks != self._had_outbox:
            self._had_outbox = data.webhooks
            self.set_focus(self.query_one(DeliveryTable) if data.webhooks else None)  # its enter too
            self.refresh_bindings()
        self.query_one(HookTable).show_hooks(data.hooks, variables)
        self.query_one(DeliveryTable).show_deliveries(data.deliveries, variables)
        self._show_selected()
        self._show_titles()

    def _show_titles(self) -> None:
        d = self.data
        if self.stack is None:
            status = "[$foreground-muted]waiting for the stack[/]"
        elif not d.read:
            status = "[$foreground-muted]reading webhooks and alerts…[/]"
        else:
            status = f"{_alerts_summary(d.rules)}   {_hooks_summary(d)}"
        if d.problem:
            status += f"   [$error]{escape(d.problem)}[/]"
        self.query_one("#hooks-status", Label).update(status)
        which = "[$warning]failures only[/]  [$foreground-muted](f: all)[/]" if self.failures \
            else "all  [$foreground-muted](f: failures only)[/]"
        self.query_one("#deliveries-title", Label).update(
            f"[b]Deliveries[/b]  [$foreground-muted]newest first:[/] {which}")

    # -- keys -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The delivery keys are shown dimmed while there is no outbox (no webhooks: nothing to act on)."""
        data = getattr(self, "data", None)  # asked before on_mount too
        if action in ("toggle_failures", "retry", "open_task") and (data is None or not data.webhooks):
            return None
        return True

    def action_toggle_failures(self) -> None:
        self.failures = not self.failures
        self._show_titles()
        self.poll_soon(0.01)

    def action_retry(self) -> None:
        row = self._selected()
        if row is None:
            return
        if row.get("status") == "delivered":
            self.notify(f"delivery {row['id']} was acknowledged already: it is never sent again",
                        severity="warning")
            return
        stack, delivery_id = self.stack, int(row["id"])
        self.call(f"retry delivery {delivery_id}", lambda: retry_delivery(stack, delivery_id), _sending)

    def action_open_task(self) -> None:
        row = self._selected()
        if row is None:
            return
        rule = alert_rule(row)
        if rule is not None:
            self.notify(printable(f"delivery {row['id']} notifies of the alert {rule}: no task to open"))
        else:
            self.app.post_message(OpenTask(str(row["task_id"])))

    @on(DeliveryTable.RowHighlighted)
    def _show_selected(self) -> None:
        row = self.query_one(DeliveryTable).selected_row(self.data.deliveries)
        self.query_one("#delivery-detail", Static).update(delivery_markup(row))

    @on(DeliveryTable.RowSelected)
    def _enter(self) -> None:
        self.action_open_task()

    def _selected(self) -> dict[str, Any] | None:
        row = self.query_one(DeliveryTable).selected_row(self.data.deliveries)
        if row is None:
            self.notify("no delivery selected", severity="warning")
        return None if row is None else dict(row)


def _sending(row: dict[str, Any]) -> str:
    return printable(f"delivery {row['id']} ({row.get('name') or '?'} {row.get('state')}): sending now")


def _alerts_summary(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return "[$foreground-muted]no alert rules[/]"
    firing = sum(1 for r in rules if r.get("state") == "firing")
    text = f"[b]{len(rules)}[/b] alert rule{'s' if len(rules) != 1 else ''}"
    return text + (f", [$error][b]{firing}[/b] firing[/]" if firing else ", [$success]none firing[/]")


def _hooks_summary(d: HooksData) -> str:
    if not d.hooks:
        return "[$foreground-muted]no webhooks[/]"
    total = {k: sum(int((h.get("counts") or {}).get(k, 0)) for h in d.hooks)
             for k in ("delivered", "pending", "failing")}
    failing = f"[$error]{total['failing']:,} failing[/]" if total["failing"] else "0 failing"
    return (f"[b]{len(d.hooks)}[/b] webhook{'s' if len(d.hooks) != 1 else ''}: {total['delivered']:,} delivered, "
            f"{total['pending']:,} pending, {failing}")
