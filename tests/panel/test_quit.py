"""Quitting a stack the panel started, with work in flight: it asks, says what happens, can wait."""

from __future__ import annotations

import pytest
from textual.widgets import Label

from stalk.embedded import Unfinished
from stalk.embedded.events import FINISHED, RUNNING, EventStore
from stalk.panel.screens.quit import QuitScreen, question
from tests.conftest import make_config

from .conftest import SIZE
from .harness import launching_app, sync
from .test_shell_flows import wait_until


def test_what_quitting_does_depends_on_the_broker():
    waiting = Unfinished(running=1, held=2, queued=3, mode="embedded")
    assert question(waiting) == "Quit Stalk with 1 running, 2 held by workers, 3 queued task(s)?"
    assert "the 5 waiting task(s) are lost: the embedded broker keeps nothing" in waiting.fate(10)
    assert "killed and lost" in waiting.fate(10)
    durable = Unfinished(running=1, held=0, queued=2, mode="redis")
    assert durable.fate(10) == ("running tasks get 10 s to finish, then they are killed and run again at the next "
                                "start; the 2 waiting task(s) stay in Stalk's broker and run at the next start")
    assert not Unfinished(0, 0, 0, "redis").any


@pytest.mark.procs
@sync
async def test_quit_asks_while_a_task_runs_and_waits_for_it(tmp_path):
    """ctrl+q stopped everything even with running and queued tasks (in embedded mode the queued ones
    became LOST): it asks now, `n` keeps the panel, `w` lets the running task finish, then quits (the
    stack process the panel started stops after it)."""
    config = make_config(tmp_path / "data", broker={"mode": "redis"}, beat=False)
    app = launching_app(config, "--broker", "redis", "--no-beat")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 90)
        stack = app.stack  # the stack process, over its API
        task_id = stack.control.submit({"name": "demo.slow_add", "args": [20, 22], "kwargs": {"seconds": 4},
                                        "queue": "slow"}).id

        def state() -> str | None:
            record = stack.events.get(task_id)
            return record.state if record else None

        await wait_until(pilot, lambda: state() in RUNNING, 30)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 15)
        assert "1 running" in str(app.screen.query_one("#question", Label).render())
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.is_running and not isinstance(app.screen, QuitScreen) and state() in RUNNING
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 15)
        launched = app.runtime.launched
        await pilot.press("w")
        await wait_until(pilot, lambda: app.phase.kind == "stopping", 15)
        await wait_until(pilot, lambda: not app.is_running, 60)
    assert launched is not None and launched.wait(30) == 0
    history = EventStore(history=config.paths.history_db).start()  # what the stack kept of it
    try:
        record = history.get(task_id)
    finally:
        history.stop()
    assert record is not None and record.state in FINISHED and record.state == "SUCCESS"
