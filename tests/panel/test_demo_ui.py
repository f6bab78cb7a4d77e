"""`stalk demo --ui`: the panel on a real redis stack with the demo's task mix flowing.

Its own module: the eager stack other panel modules keep for their whole module configures the same
(demo) Celery app object to run tasks eagerly, and the load would run them there instead."""

from __future__ import annotations

import pytest

from stalk.panel.app import make_app
from stalk.panel.runtime import DemoLoad
from stalk.panel.screens.quit import QuitScreen
from stalk.panel.widgets.task_table import TaskTable
from tests.conftest import make_config

from .conftest import SIZE
from .harness import sync
from .test_shell_flows import wait_until

pytestmark = [pytest.mark.procs]


@sync
async def test_demo_load_runs_once_the_stack_is_ready_and_stops_on_time(tmp_path):
    """`stalk demo --ui`: the demo's task mix flows into the panel's Tasks screen; --duration stops the
    load, not the panel; quitting stops what is left."""
    config = make_config(tmp_path / "data", broker={"mode": "redis"}, beat=False)
    app = make_app(config, load=DemoLoad(rate=10, duration=2, seed=3))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.runtime.load is not None and app.phase.kind == "ready")
        load = app.runtime.load
        await wait_until(pilot, lambda: load._thread is None or not load._thread.is_alive(), 30)
        sent = load.snapshot()["submitted"]
        assert 1 <= sent <= 25 and load.snapshot()["errors"] == 0  # how many: the machine's pace
        await pilot.press("2")
        await wait_until(pilot, lambda: len(app.screen.query_one(TaskTable).task_ids) >= sent, 30)
        assert any("demo load: 10 tasks/s for 2 s" in str(n.message) for n in app._notifications)
        await pilot.press("ctrl+q")  # tasks of the mix may still run or wait: then it asks first
        await wait_until(pilot, lambda: not app.is_running or isinstance(app.screen, QuitScreen), timeout=30)
        if app.is_running:
            await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=30)
