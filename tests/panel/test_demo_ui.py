"""`stalk demo --ui`: the panel on a real redis stack with the demo's task mix flowing.

Its own module: the eager stack other panel modules keep for their whole module configures the same
(demo) Celery app object to run tasks eagerly, and the load would run them there instead."""

from __future__ import annotations

import pytest

from stalk.panel.runtime import DemoLoad
from stalk.panel.screens.quit import QuitScreen
from stalk.panel.widgets.task_table import TaskTable
from tests.conftest import make_config

from .conftest import SIZE
from .harness import launching_app, sync
from .test_shell_flows import wait_until

pytestmark = [pytest.mark.procs]


@sync
async def test_demo_load_runs_once_the_stack_is_ready_and_stops_on_time(tmp_path):
    """`stalk demo --ui`: the stack process the panel starts sends the demo's task mix, which flows into the
    panel's Tasks screen; --duration stops the load, not the panel; quitting stops what is left."""
    config = make_config(tmp_path / "data", broker={"mode": "redis"}, beat=False)
    app = launching_app(config, "--broker", "redis", "--no-beat", load=DemoLoad(rate=10, duration=2, seed=3))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.runtime.load is not None and app.phase.kind == "ready", 90)
        load = app.runtime.load  # the stack process's load, over its API
        await wait_until(pilot, lambda: not load.snapshot()["running"], 30)
        sent = load.snapshot()["submitted"]
        assert 1 <= sent <= 25 and load.snapshot()["errors"] == 0  # how many: the machine's pace
        await pilot.press("2")
        await wait_until(pilot, lambda: len(app.screen.query_one(TaskTable).task_ids) >= sent, 30)
        assert any("demo load: 10 tasks/s for 2 s" in str(n.message) for n in app._notifications)
        launched = app.runtime.launched
        await pilot.press("ctrl+q")  # tasks of the mix may still run or wait, and the stack is its own: it asks
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), timeout=30)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=60)
    assert launched is not None and launched.wait(30) == 0
