"""Submit, Task detail and Tasks against a real stack: its own redis-server and `stalk worker` children."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, Static

from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.tasks import TasksScreen
from stalk.panel.widgets.task_table import TaskTable

from .conftest import SIZE
from .harness import app_for, sync
from .test_task_screens import fill_submit, idle, problems_text, table_ids, until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("panel-tasks")]


def detail_text(app) -> str:
    screen = app.screen
    return str(screen.query_one("#detail-body", Static).render()) if isinstance(screen, DetailScreen) else ""


def detail_state(app) -> str | None:
    screen = app.screen
    if isinstance(screen, DetailScreen) and screen.record is not None:
        return screen.record.state
    return None


@sync
async def _submit_then_revoke(stack) -> None:
    app = app_for(stack, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add", "[2, 3]")
        await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict", 30)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: detail_state(app) == "SUCCESS", "demo.add to succeed", 30)
        added = app.screen.task_id
        assert "default@" in (app.screen.record.worker or "")
        await pilot.press("escape")  # back to the form, in the field it was sent from
        assert app.screen is screen
        await pilot.press("escape", "2")
        assert isinstance(app.screen, TasksScreen)
        await until(pilot, lambda: added in table_ids(app), "the task in the table")
        assert app.screen.query_one(TaskTable).row(added).state == "SUCCESS"

        screen = await fill_submit(pilot, "demo.slow_add", "[1, 2]")  # due in 10 min: held by the worker
        screen.query_one("#countdown", Input).value = "600"
        await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict", 30)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: detail_state(app) == "RECEIVED", "the worker to hold the task", 30)
        await pilot.press("v", "y")  # Celery reports it REVOKED only when it comes due
        await until(pilot, lambda: "revoke requested" in detail_text(app), "the stored revoke shown", 30)
        assert "workers discard it when it comes due (eta " in detail_text(app)
        assert detail_state(app) == "RECEIVED" and app.screen.task_id in stack.control.revoked()
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back on Submit")
        await pilot.press("escape")  # leave the field: fill_submit's 7 is a key again

        screen = await fill_submit(pilot, "demo.long_running", "[30]")
        screen.query_one("#countdown", Input).value = ""  # the form keeps what the last submit had
        await until(pilot, lambda: "ready" in problems_text(screen), "the control API's verdict", 30)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: detail_state(app) in ("STARTED", "PROGRESS"), "the long task to run", 30)
        long_id = app.screen.task_id
        await pilot.press("t")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: detail_state(app) == "REVOKED", "REVOKED", 30)
        assert stack.events.get(long_id).exception == "terminated"
        assert long_id in stack.control.revoked()


def test_submit_and_revoke_on_a_redis_stack(running_stack) -> None:
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    _submit_then_revoke(stack)
