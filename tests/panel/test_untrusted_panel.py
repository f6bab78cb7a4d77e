"""Escapes in task data never reach the panel's screen raw (issue 26, finding 4): a task whose args, result
and exception carry OSC/CSI/C1/BEL/backspace/CR, on a real stack (Stalk's redis, `stalk worker` children),
shown on the Dashboard, Tasks, Task detail (with its timeline), Workers and Logs. And a stack thread
that died (finding 5) is shown on the Dashboard as an error."""

from __future__ import annotations

import time

import pytest

from stalk.panel.messages import LogsShow, OpenTask
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.widgets.log_view import LogView

from ..conftest import wait_until
from ..test_thread_watch import DieOnce
from ..test_untrusted_text import HOSTILE, raw_in
from .conftest import SIZE
from .harness import app_for, sync
from .test_task_screens import idle, table_ids, until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("panel-untrusted")]

APP = "tests.apps.events_app:app"


def screen_text(app) -> str:
    """What the terminal would show: the screen's rendered lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def clean(app, where: str) -> str:
    text = screen_text(app)
    assert not raw_in(text), (where, [line for line in text.splitlines() if raw_in(line)])
    return text


@sync
async def _look_everywhere(stack, added: str, failed: str, odd_id: str) -> None:
    app = app_for(stack, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        # a stack thread that died (the test hook below) is a row with its error on the Dashboard
        await until(pilot, lambda: "thread:status" in screen_text(app), "the dead thread's row", 30)
        (line,) = [line for line in clean(app, "dashboard").splitlines() if "thread:status" in line]
        assert "crashed" not in line and "died: RuntimeError" in line, line
        await pilot.press("2")
        await until(pilot, lambda: {added, failed, odd_id} <= set(table_ids(app)), "the tasks in the table", 30)
        assert "PWNED" in clean(app, "tasks")
        for task_id in (added, failed):
            app.post_message(OpenTask(task_id))
            await until(pilot, lambda t=task_id: isinstance(app.screen, DetailScreen)
                        and app.screen.record is not None and app.screen.record.task_id == t, "the detail", 30)
            await idle(pilot)
            assert "PWNED" in clean(app, f"detail of {task_id}")
            await pilot.press("escape")
            await idle(pilot)
        await pilot.press("3")
        await idle(pilot)
        clean(app, "workers")
        await pilot.press("6")
        await idle(pilot)
        app.screen.post_message(LogsShow("worker:events"))
        await until(pilot, lambda: any("PWNED" in s.text for s in app.screen.query_one(LogView).lines),
                    "the worker's log line of the task", 30)
        assert "PWNED" in clean(app, "logs")


def test_task_data_reaches_the_panel_printable(running_stack, monkeypatch) -> None:
    import stalk.embedded.stack as stack_module

    status_hook = DieOnce(stack_module.write_status)
    monkeypatch.setattr(stack_module, "write_status", status_hook)
    stack = running_stack(broker={"mode": "redis"}, beat=False, app=APP)
    status_hook.armed.set()
    added = stack.app.send_task("ev.add", (HOSTILE, "y")).id
    failed = stack.app.send_task("ev.boom", (HOSTILE,)).id
    odd_id = stack.app.send_task("ev.add", ("a", "b"), task_id=f"id-{HOSTILE}").id  # a plain client sets any id
    wait_until(lambda: all((r := stack.events.get(t)) and r.finished for t in (added, failed, odd_id)), timeout=30)
    _look_everywhere(stack, added, failed, odd_id)
