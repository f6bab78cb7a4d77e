"""Hooks screen (8): alert rules and events, webhooks with their counts, and the outbox's deliveries.

Pilot flows run on a real eager stack whose [[webhooks]] point at real local receivers (one up, one
down) and whose [[alerts]] rule fires on a failed task: f shows failures only, r sends a failing delivery
now once its receiver is back, enter opens the task, a rule that begins firing is a toast; over the
stack's API (as `stalk` runs the panel) and in process. Snapshots read a real outbox file of fixed rows
(a real stack's rows carry the time they were written and a free port in their URL) served by the API
of the shared eager stack, and alert rules from `Alerts`, a stand-in with the API's shape (real rules
carry the time they changed state)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.markup import to_content
from textual.widgets import Label

from stalk.embedded import Stack
from stalk.embedded.alerts import engine as alerts_engine
from stalk.embedded.webhooks import Entry, Outbox, Webhooks
from stalk.embedded.webhooks import delivery as delivery_module
from stalk.panel.actions import actions_for
from stalk.panel.alert_watch import AlertWatch
from stalk.panel.hooks_access import fetch_hooks, read_alerts
from stalk.panel.messages import BrokerChanged
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.help import HelpScreen
from stalk.panel.screens.hooks import HooksScreen
from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.webhook_tables import DeliveryTable, delivery_cells, delivery_markup
from tests.conftest import make_config, module_stack, wait_until
from tests.test_webhooks import APP, Receiver

from .conftest import SIZE
from .harness import (
    FROZEN,
    REDIS,
    app_for,
    in_process_app,
    remote_view,
    serving,
    settle,
    sync,
    until,
)

# -- alert rules at fixed times -------------------------------------------------------------------


class Alerts:
    """Stands in for a stack's `alerts` (embedded/alerts Alerts): `status(limit)`, fixed rules and events."""

    def __init__(self, rules: list[dict[str, Any]], recent: list[dict[str, Any]] | None = None) -> None:
        self.rules = rules
        self.recent = recent or []

    def status(self, limit: int = 100) -> dict[str, list[dict[str, Any]]]:
        return {"rules": [dict(r) for r in self.rules], "recent": [dict(e) for e in self.recent[:limit]]}


def rule(name: str, kind: str, description: str, state: str, value: float | None, threshold: float,
         since: float | None, message: str | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "description": description, "state": state, "since": since,
            "value": value, "threshold": threshold, "message": message}


FIRING = [  # as embedded/alerts describes its kinds of rules
    rule("billing-failures", "task_failures", "billing.* failed >= 3 times in 10 min", "firing", 5, 3,
         FROZEN - 300, "5 failures of billing.* in 10 min"),
    rule("backlog", "queue_depth", "queue default deeper than 1000 for 5 min", "ok", 12, 1000, FROZEN - 7200,
         "12 messages in default"),
    rule("quota-openai", "quota", "quota openai used >= 90%", "unknown", None, 90, None,
         "not measured: the quota ledger is unreadable (state unknown)"),
]
EVENTS = [
    {"id": 3, "rule": "billing-failures", "state": "firing", "at": FROZEN - 300,
     "message": "5 failures of billing.* in 10 min"},
    {"id": 2, "rule": "backlog", "state": "resolved", "at": FROZEN - 7200, "message": "12 messages in default"},
    {"id": 1, "rule": "backlog", "state": "firing", "at": FROZEN - 9000, "message": "2,400 messages in default"},
]

# -- a fixed outbox for snapshots ------------------------------------------------------------------

HOOKS = [
    {"url": "http://127.0.0.1:8080/all", "secret": "s3cret"},
    {"url": "https://hooks.example.com/stalk/billing", "tasks": ["billing.*"], "states": ["FAILURE"]},
]
ALL, BILLING = HOOKS[0]["url"], HOOKS[1]["url"]


def fill(path: Path) -> None:
    """Two delivered, one refused (400), one failing while its receiver is down, one not tried yet; then
    each row's times set to fixed ones (the outbox writes the time of each call)."""
    outbox = Outbox(path)
    at: dict[int, float] = {}

    def add(when: float, hook: str, task_id: str, name: str, state: str) -> int:
        outbox.enqueue([Entry(hook, task_id, state, "", name, "{}")])
        row = outbox.recent(1)[0].id
        at[row] = when
        return row

    first = add(FROZEN - 600, ALL, "5e1c0a7e-0001-4c6f-9d4e-6a1f00000001", "reports.[daily]", "SUCCESS")
    outbox.acknowledge(first, 200)
    second = add(FROZEN - 420, ALL, "9b7d2f10-0002-4c6f-9d4e-6a1f00000002", "billing.charge", "SUCCESS")
    outbox.acknowledge(second, 204)
    refused = add(FROZEN - 240, ALL, "c04a1e55-0003-4c6f-9d4e-6a1f00000003", "billing.refund", "FAILURE")
    outbox.failed(refused, 400, "HTTP 400: refused by the receiver", 0)
    down = add(FROZEN - 240, BILLING, "c04a1e55-0003-4c6f-9d4e-6a1f00000003", "billing.refund", "FAILURE")
    for _ in range(3):
        outbox.failed(down, None, "ConnectError: [Errno 111] Connection refused", 0)
    add(FROZEN - 5, ALL, "e2f3a4b5-0005-4c6f-9d4e-6a1f00000005", "mail.send", "SUCCESS")
    outbox.close()
    with sqlite3.connect(path) as db:
        for row, when in at.items():
            db.execute("UPDATE outbox SET created = ?, next_at = ?, last_try = CASE WHEN attempts > 0 THEN ? END, "
                       "acked_at = CASE WHEN acked_at IS NOT NULL THEN ? END WHERE id = ?",
                       (when, when + 300, when + 1, when + 1, row))
    db.close()


@pytest.fixture
def fixed_hooks(eager_stack: Stack, tmp_path: Path) -> Iterator[Webhooks]:
    """A real (not started: nothing is sent) Webhooks on an outbox file of fixed rows."""
    fill(tmp_path / "webhooks.sqlite3")
    config = make_config(tmp_path / "data", webhooks=HOOKS)
    hooks = Webhooks(config.webhooks, Outbox(tmp_path / "webhooks.sqlite3"), eager_stack.events, lambda _l: None)
    yield hooks
    hooks.outbox.close()


def served(stack: Stack, webhooks: Webhooks | None = None, alerts: Alerts | None = None) -> Stack:
    """`stack` serving `webhooks` (and their [[webhooks]] in its config, which GET /webhooks lists) and
    `alerts` to the panel over its API, for this test."""
    config = replace(stack.config, webhooks=webhooks.hooks if webhooks is not None else ())
    return serving(stack, webhooks=webhooks, alerts=alerts, config=config)


def poll_drawn(screen: Any) -> bool:
    """The poll a key or the screen's arrival asked for (0.01 s later) was fetched and drawn."""
    timer = getattr(screen, "_timer", None)
    return isinstance(screen, HooksScreen) and screen.data.read and (timer is None or timer._interval >= 1)


def on_hooks(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(BrokerChanged(REDIS))
        await pilot.pause()
        await pilot.press("8")
        await until(pilot, lambda: poll_drawn(pilot.app.screen), "the Hooks screen's first poll")
        for key in press:
            await pilot.press(key)
            await until(pilot, lambda: poll_drawn(pilot.app.screen), f"the poll after {key}")

    return run_before


def shown_ids(app: Any) -> list[str]:
    table = app.screen.query_one(DeliveryTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


# -- pure parts ---------------------------------------------------------------------------------


def test_only_a_change_to_firing_is_news() -> None:
    watch = AlertWatch()
    assert watch.newly_firing(FIRING) == []  # firing at the first look: on screen, not news
    calm = [dict(r, state="ok") for r in FIRING]
    assert watch.newly_firing(calm) == []
    again = watch.newly_firing(FIRING)
    assert [r["name"] for r in again] == ["billing-failures"]
    assert watch.newly_firing(FIRING) == []  # still firing: said once
    new = rule("new", "queue_depth", "queue q deeper than 1", "firing", 2, 1, FROZEN, None)
    assert [r["name"] for r in watch.newly_firing([*FIRING, new])] == ["new"]  # a rule added while running


def test_untrusted_cells_are_printable_and_literal() -> None:
    row = {"id": 1, "hook": "http://h/\x1b[2Jx", "task_id": "id\x07", "name": "[b]evil[/b]\x9b", "state": "FAILURE",
           "status": "failing", "created": FROZEN, "attempts": 2, "last_status": None,
           "last_error": "boom\x1b]0;title\x07 [red]x[/red]"}
    cells = [str(c) for c in delivery_cells(row, {})]
    assert all("\x1b" not in c and "\x07" not in c and "\x9b" not in c for c in cells)
    assert "[b]evil[/b]" in cells[2] and "[red]x[/red]" in cells[7]  # shown as written, never markup
    detail = to_content(delivery_markup(row)).plain  # the selected delivery's lines below the table
    assert "task [b]evil[/b]" in detail and "[red]x[/red]" in detail and "\x1b" not in detail


def test_the_help_lists_the_hooks_keys() -> None:
    keys = {a.key: a.description for a in actions_for("hooks")}
    assert keys == {"f": "Failures only", "r": "Retry now", "enter": "Open task"}
    assert any(a.key == "8" and "hooks" in a.action for a in actions_for("app"))


def test_alerts_read_in_process_and_over_the_api(eager_stack: Stack) -> None:
    assert read_alerts(eager_stack) == {"rules": [], "recent": []}  # a stack without [[alerts]]
    assert read_alerts(remote_view(eager_stack)) == {"rules": [], "recent": []}
    served(eager_stack, alerts=Alerts(FIRING, EVENTS))
    for stack in (eager_stack, remote_view(eager_stack)):
        alerts = read_alerts(stack)
        assert [r["state"] for r in alerts["rules"]] == ["firing", "ok", "unknown"] and alerts["recent"] == EVENTS


# -- a real stack, real receivers, a real alert rule --------------------------------------------------


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    up, down = Receiver().up(), Receiver()
    yield up, down
    up.down()
    down.down()


@pytest.fixture(scope="module")
def hook_stack(tmp_path_factory: pytest.TempPathFactory, receivers: tuple[Receiver, Receiver]) -> Iterator[Stack]:
    """`/ok` answers; `/down` refuses connections, and waits a minute between its tries (retry now skips it).
    The rule `booms` fires when ev.boom failed once in 10 minutes (evaluated every 0.2 s)."""
    up, down = receivers
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delivery_module, "BACKOFF_INITIAL", 60.0)
        patch.setattr(alerts_engine, "INTERVAL", 0.2)
        hooks = [{"url": up.url("/ok"), "backoff_max": 600}, {"url": down.url("/down"), "backoff_max": 600}]
        rules = [{"name": "booms", "kind": "task_failures", "task": "ev.boom", "count": 1, "minutes": 10}]
        with module_stack(tmp_path_factory.mktemp("hooks") / "data", broker={"mode": "eager"}, app=APP,
                          flower={"enabled": False}, webhooks=hooks, alerts=rules) as stack:
            yield stack


def run_add(stack: Stack, up: Receiver) -> str:
    """A task whose SUCCESS reaches `/ok` and fails (connection refused) to `/down`."""
    task_id = stack.app.tasks["ev.add"].delay(2, 3).id
    assert wait_until(lambda: any(r.payload["task_id"] == task_id for r in up.snapshot()), timeout=10)
    assert wait_until(lambda: any(r.task_id == task_id and r.status == "failing"
                                  for r in stack.webhooks.outbox.recent(50, failures=True)), timeout=10)
    return task_id


async def retry_flow(app: Any, pilot: Any, task_id: str, down: Receiver) -> None:
    """8, f (failures only: our failing row), r once its receiver is up: it gets it; enter opens the task."""
    await pilot.press("8")
    screen = app.screen
    assert isinstance(screen, HooksScreen)
    await until(pilot, lambda: any(d["task_id"] == task_id for d in screen.data.deliveries), "our rows")
    ours = [d for d in screen.data.deliveries if d["task_id"] == task_id]
    assert sorted(d["status"] for d in ours) == ["delivered", "failing"]
    await pilot.press("f")
    await until(pilot, lambda: screen.data.deliveries and all(d["status"] == "failing" for d in screen.data.deliveries),
                "failures only")
    assert "failures only" in str(screen.query_one("#deliveries-title", Label).render())
    failing = next(d for d in screen.data.deliveries if d["task_id"] == task_id)
    assert failing["hook"] == down.url("/down") and "refused" in failing["last_error"].lower()
    table = screen.query_one(DeliveryTable)
    table.move_cursor(row=shown_ids(app).index(str(failing["id"])))
    down.up()
    try:
        await pilot.press("r")
        await until(pilot, lambda: any(r.delivery == failing["id"] for r in down.snapshot()),
                    "the retried delivery at its receiver", timeout=10)
        await until(pilot, lambda: str(failing["id"]) not in shown_ids(app), "the delivered row leaves failures only")
        await pilot.press("f")
        await until(pilot, lambda: any(d["id"] == failing["id"] and d["status"] == "delivered"
                                       for d in screen.data.deliveries), "the row delivered")
    finally:
        down.down()
    table.move_cursor(row=shown_ids(app).index(str(failing["id"])))
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the task's detail")
    assert app.screen.task_id == task_id


@pytest.mark.procs
@sync
async def test_keys_over_the_api(hook_stack: Stack, receivers: tuple[Receiver, Receiver]) -> None:
    up, down = receivers
    task_id = run_add(hook_stack, up)
    data = fetch_hooks(remote_view(hook_stack))
    assert data.problem is None and [h["url"] for h in data.hooks] == [up.url("/ok"), down.url("/down")]
    assert [r["name"] for r in data.rules] == ["booms"]
    app = app_for(hook_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await retry_flow(app, pilot, task_id, down)


@pytest.mark.procs
@sync
async def test_keys_in_process(hook_stack: Stack, receivers: tuple[Receiver, Receiver]) -> None:
    up, down = receivers
    task_id = run_add(hook_stack, up)
    app = in_process_app(hook_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await retry_flow(app, pilot, task_id, down)


def alert_toasts(app: Any) -> list[Any]:
    return [n for n in app._notifications if n.title == "Alert firing"]


@pytest.mark.procs
@sync
async def test_a_rule_that_begins_firing_is_a_toast_and_red(hook_stack: Stack) -> None:
    """A real rule: ok at the panel's first look, then ev.boom fails: a toast (once), and the Hooks screen
    shows it firing."""
    app = app_for(hook_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await until(pilot, lambda: (app._alert_watch._states or {}).get("booms") == "ok", "the first look")
        hook_stack.app.tasks["ev.boom"].delay("alert me")
        assert wait_until(lambda: hook_stack.alerts.firing()["booms"], timeout=10)
        app.check_alerts()  # the app's next look (every ALERTS_EVERY s), now
        toasts = await until(pilot, lambda: alert_toasts(app), "a toast")
        assert len(toasts) == 1 and toasts[0].severity == "error" and toasts[0].message.startswith("booms: ")
        app.check_alerts()
        await until(pilot, lambda: app._alert_watch._states["booms"] == "firing", "the next look")
        assert len(alert_toasts(app)) == 1  # once per change
        await pilot.press("8")
        screen = app.screen
        await until(pilot, lambda: screen.data.rules, "the rules")
        table = screen.query_one("#alert-rules")
        state = table.get_row("booms")[0]
        assert str(state) == "firing" and "bold" in str(state.style)
        assert any(e["rule"] == "booms" and e["state"] == "firing" for e in screen.data.events)


@sync
async def test_the_key_bar_and_help_show_the_hooks_keys(eager_stack: Stack) -> None:
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await on_hooks()(pilot)
        keys = app.screen.query_one(KeyBar).shown_keys(app.screen)
        assert [(k[1], k[2]) for k in keys[:3]] == [("Failures only", False), ("Retry now", False),
                                                    ("Open task", False)]  # dimmed: no webhooks
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0] == ["Hooks", "f", "Failures only"] and ["Everywhere", "8", "Go to Hooks"] in rows


# -- snapshots ----------------------------------------------------------------------------------


def test_hooks_nothing_configured_snapshot(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=on_hooks())


def test_hooks_deliveries_snapshot(snap_compare, eager_stack, fixed_hooks):
    app = app_for(served(eager_stack, fixed_hooks))
    assert snap_compare(app, terminal_size=SIZE, run_before=on_hooks())


def test_hooks_failures_only_snapshot(snap_compare, eager_stack, fixed_hooks):
    app = app_for(served(eager_stack, fixed_hooks))
    assert snap_compare(app, terminal_size=SIZE, run_before=on_hooks("f"))


def test_hooks_alerts_firing_snapshot(snap_compare, eager_stack, fixed_hooks):
    app = app_for(served(eager_stack, fixed_hooks, Alerts(FIRING, EVENTS)))
    assert snap_compare(app, terminal_size=SIZE, run_before=on_hooks())


def test_hooks_alerts_firing_80x24_snapshot(snap_compare, eager_stack, fixed_hooks):
    app = app_for(served(eager_stack, fixed_hooks, Alerts(FIRING, EVENTS)))
    assert snap_compare(app, terminal_size=(80, 24), run_before=on_hooks())
