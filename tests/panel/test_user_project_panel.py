"""The panel on a user's own project (tests/projects/include_proj, not the demo), on a real redis stack:
Submit shows the project's task signature and docstring (its tasks come from `include=`), refuses
arguments that do not fit, sends what fits to the project's routed queue; one worker for all its queues."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Static, TextArea

from stalk.panel.app import make_app
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.submit import SubmitScreen
from tests.conftest import ROOT, make_config

from .conftest import SIZE
from .harness import sync
from .test_shell_flows import wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("user-projects")]

PROJECT = ROOT / "tests" / "projects" / "include_proj"


def problems_text(screen: SubmitScreen) -> str:
    return str(screen.query_one("#submit-problems", Static).render())


@sync
async def test_submit_on_a_users_project(tmp_path):
    config = dataclasses.replace(make_config(tmp_path / "data", app="proj.celery:app", broker={"mode": "redis"},
                                             beat=False), app_dir=PROJECT)
    app = make_app(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 90)
        assert [p.name for p in app.stack.processes() if p.role == "worker"] == ["worker:celery"]
        await pilot.press("7")
        await wait_until(pilot, lambda: isinstance(app.screen, SubmitScreen), 10)
        screen = app.screen
        await wait_until(pilot, lambda: "proj.tasks.resize_image" in screen.task_names, 30)
        await pilot.press("ctrl+l", *"resize_im", "enter")
        assert screen.task_name == "proj.tasks.resize_image"
        doc = str(screen.query_one("#task-doc", Static).render())
        assert "resize_image(path: str, width: int)" in doc and "Resize one image" in doc
        screen.query_one("#args", TextArea).text = "[1, 2, 3, 4, 5]"
        await wait_until(pilot, lambda: "positional argument" in problems_text(screen), 30)
        await pilot.press("ctrl+s")
        await pilot.pause()  # the app handled the key: nothing was sent
        assert screen.sent == [] and isinstance(app.screen, SubmitScreen)
        screen.query_one("#args", TextArea).text = '["cat.png", 64]'
        await wait_until(pilot, lambda: "ready" in problems_text(screen), 30)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), 30)
        detail = app.screen
        # the task-sent event (with the queue) may come after the worker's: wait for the fields read
        await wait_until(pilot, lambda: detail.record is not None and detail.record.state == "SUCCESS"
                         and detail.record.queue is not None, 60)
        assert detail.record.queue == "media" and "cat.png@64" in str(detail.record.result)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, 60)
