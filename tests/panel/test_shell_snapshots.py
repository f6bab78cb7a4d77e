"""Snapshots of the shell, Dashboard, Logs and Help in their meaningful states (eager stack, frozen clock)."""

from __future__ import annotations

from textual.widgets import Input

from stalk.embedded import BrokerInfo
from stalk.panel.messages import (
    BrokerChanged,
    BrokerHealth,
    LogsFetched,
    Phase,
    PhaseChanged,
    ProcessesChanged,
)

from .conftest import SIZE
from .harness import (
    BUSY,
    REDIS,
    STARTING,
    app_for,
    feeding,
    log_lines,
    palette_hits,
    serving,
    settle,
    until,
)

EXTERNAL = BrokerInfo("external", "amqp://guest:guest@rabbit.internal:5672//", "redis://cache.internal:6379/3",
                      "the external broker's own (Stalk attached to it: it runs no broker, workers or beat)")


def test_dashboard_busy(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE,
                        run_before=feeding(BrokerChanged(REDIS), ProcessesChanged(BUSY)))


def test_dashboard_busy_80x24(snap_compare, eager_stack):
    """A classic terminal: the mode bar drops the brand and shortens Dashboard, queue bars narrow."""
    assert snap_compare(app_for(eager_stack), terminal_size=(80, 24),
                        run_before=feeding(BrokerChanged(REDIS), ProcessesChanged(BUSY)))


def test_dashboard_eager_empty(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=feeding())


def test_dashboard_external(snap_compare, eager_stack):
    """Attached to a cluster Stalk does not run: no process rows, and a line that says why."""
    assert snap_compare(app_for(serving(eager_stack, mode="external")), terminal_size=SIZE, run_before=feeding(
        BrokerChanged(EXTERNAL), PhaseChanged(Phase("ready", "attached"))))


def test_dashboard_starting(snap_compare, eager_stack):
    phase = Phase("starting", "starting worker:slow, worker:io, beat", 2, 5)
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=feeding(
        BrokerChanged(REDIS), ProcessesChanged(STARTING), PhaseChanged(phase)))


def test_dashboard_start_failed(snap_compare, eager_stack):
    phase = Phase("failed", "broker port 6390 on 127.0.0.1 is already in use: free it, or set broker.port = 0")
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=feeding(PhaseChanged(phase)))


def test_dashboard_broker_down(snap_compare, eager_stack):
    problem = "broker unreachable (OperationalError: Error 111 connecting to 127.0.0.1:6390. Connection refused.)"
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=feeding(
        BrokerChanged(REDIS), ProcessesChanged(BUSY), BrokerHealth(problem)))


def test_dashboard_confirm_stop(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=feeding(
        BrokerChanged(REDIS), ProcessesChanged(BUSY), press=("down", "s")))


def logs_feeding(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(ProcessesChanged(BUSY))
        await pilot.press("6")
        await pilot.pause()
        pilot.app.screen.post_message(LogsFetched({"broker": log_lines("broker"),
                                                   "worker:default": log_lines("worker:default")}))
        await pilot.pause()
        for key in press:
            await pilot.press(key)
        await pilot.pause()

    return run_before


def test_logs_follow(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=logs_feeding())


def test_logs_filtered(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE,
                        run_before=logs_feeding("]", "slash", *"task", "enter", "f"))


def test_logs_eager_empty(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, press=["6"])


def test_help(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, press=["question_mark"])


async def _palette_typed(pilot) -> None:
    await pilot.press("colon", *"rest")
    await until(pilot, lambda: palette_hits(pilot.app), "the palette's matches")
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False  # a blinking cursor is a coin toss in the snapshot
    await pilot.pause()


def test_palette(snap_compare, eager_stack):
    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=_palette_typed)
