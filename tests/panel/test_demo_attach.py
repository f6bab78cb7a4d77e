"""`stalk demo --ui` as a client: the panel attached to a stack process asks it for the demo load
(POST /demo/load); the stack sends it, the panel holds no Celery app; quitting stops the load."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from stalk.embedded import Stack
from stalk.embedded.service import ApiError
from stalk.panel.app import make_app
from stalk.panel.runtime import DemoLoad, RemoteLoad, RemoteSource
from stalk.panel.widgets.task_table import TaskTable
from tests.api_support import client_of
from tests.conftest import module_stack

from .conftest import SIZE
from .harness import sync
from .test_shell_flows import wait_until

pytestmark = [pytest.mark.procs]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Stack]:
    with module_stack(tmp_path / "data", broker={"mode": "embedded"}, beat=False) as stack:
        yield stack


@sync
async def test_the_attached_stack_sends_the_demo_load(running: Stack):
    app = make_app(running.config, source=RemoteSource(running.paths.data_dir), probe_broker=False,
                   load=DemoLoad(rate=10, duration=2, seed=3))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: isinstance(app.runtime.load, RemoteLoad), 30)
        load = app.runtime.load
        await wait_until(pilot, lambda: not load.snapshot()["running"], 30)
        sent = load.snapshot()["submitted"]
        assert 1 <= sent <= 25 and load.snapshot()["errors"] == 0
        await pilot.press("2")
        await wait_until(pilot, lambda: len(app.screen.query_one(TaskTable).task_ids) >= sent, 30)
        assert any("demo load: 10 tasks/s for 2 s" in str(n.message) for n in app._notifications)
        await pilot.press("ctrl+q")  # not its stack: it leaves without asking
        await wait_until(pilot, lambda: not app.is_running, 30)
    client = client_of(running)
    assert client.get("/demo/load")["running"] is False
    client.close()


@sync
async def test_a_stack_of_another_app_says_no_demo_load(running: Stack, monkeypatch: pytest.MonkeyPatch):
    config = running.config
    monkeypatch.setattr(running, "config", dataclasses.replace(config, app="someone.else:app"))
    app = make_app(config, source=RemoteSource(running.paths.data_dir), probe_broker=False,
                   load=DemoLoad(rate=10, duration=2, seed=3))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: any("demo load not started" in str(n.message)
                                            for n in app._notifications), 30)
        assert app.runtime.load is None
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, 30)
    with pytest.raises(ApiError):
        client_of(running).get("/demo/load")
