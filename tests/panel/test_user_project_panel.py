"""The panel on a user's own project (tests/projects/include_proj, not the demo), on a real redis stack:
Submit shows the project's task signature and docstring (its tasks come from `include=`), refuses
arguments that do not fit, sends what fits to the project's routed queue; one worker for all its queues.
Items 4, 9, 10 and 11 of #20 on user projects: Submit sends only the task named in the box, quitting with
work in flight asks and can wait, a metered task's quota is exhausted when the next call does not fit
(tests/projects/metered_proj), the worker detail follows a pool grow."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any

import pytest
from textual.widgets import Input, Label, Static, TextArea

from stalk.embedded import Stack
from stalk.embedded.events import RUNNING, EventStore
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.quit import QuitScreen
from stalk.panel.screens.quota import QuotaScreen
from stalk.panel.screens.submit import SubmitScreen
from stalk.panel.screens.worker_detail import WorkerDetailScreen, summary_text
from stalk.panel.screens.workers import WorkersScreen
from tests.conftest import ROOT, clean_env, make_config, stalk_cmd

from .conftest import SIZE
from .harness import launching_app, quit_launched, sync
from .test_shell_flows import wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("user-projects")]

PROJECT = ROOT / "tests" / "projects" / "include_proj"
UP_FLAGS = ("-A", "proj.celery:app", "--broker", "redis", "--no-beat")
METERED = ROOT / "tests" / "projects" / "metered_proj"


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the user runs `stalk`: the stack process the panel starts imports the project from there."""
    monkeypatch.chdir(PROJECT)


async def wait_until_value(pilot, fn, timeout: float = 60.0):
    """The first truthy `fn()` (asked off the UI thread's turn, between pauses)."""
    values: list = []

    def answered() -> Any:
        values.append(fn())
        return values[-1]

    await wait_until(pilot, answered, timeout)
    return values[-1]


def problems_text(screen: SubmitScreen) -> str:
    return str(screen.query_one("#submit-problems", Static).render())


def project_config(tmp_path):
    return dataclasses.replace(make_config(tmp_path / "data", app="proj.celery:app", broker={"mode": "redis"},
                                           beat=False), app_dir=PROJECT)


@sync
async def test_submit_on_a_users_project(tmp_path, in_project):
    config = dataclasses.replace(make_config(tmp_path / "data", app="proj.celery:app", broker={"mode": "redis"},
                                             beat=False), app_dir=PROJECT)
    app = launching_app(config, *UP_FLAGS)
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
        await quit_launched(pilot)


@sync
async def test_submit_sends_only_the_named_task_and_the_worker_detail_follows_a_grow(tmp_path, in_project):
    """Items 4 and 11 of #20 on a user's project. Submit resize_image, come back, type a name that
    matches no task, or a digit: ctrl+s sent the task picked before; it sends nothing now. After `+` on the
    project's worker its detail showed the old pool size beside the new process list."""
    app = launching_app(project_config(tmp_path), *UP_FLAGS)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 90)
        stack = app.stack  # the stack process, over its API
        await pilot.press("7")
        await wait_until(pilot, lambda: isinstance(app.screen, SubmitScreen), 10)
        screen = app.screen
        await wait_until(pilot, lambda: "proj.tasks.resize_image" in screen.task_names, 30)
        await pilot.press("ctrl+l", *"resize_im", "enter")
        screen.query_one("#args", TextArea).text = '["a.png", 8]'
        await wait_until(pilot, lambda: "ready" in problems_text(screen), 30)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), 30)
        first = app.screen.task_id
        await pilot.press("7")
        await wait_until(pilot, lambda: app.screen is screen, 10)
        await pilot.press("ctrl+l", *"proj.tasks.nope")
        assert screen.task_name is None
        assert "no task named proj.tasks.nope" in str(screen.query_one("#task-doc", Static).render())
        await wait_until(pilot, lambda: "ready" not in problems_text(screen), 10)
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("ctrl+l", "4")  # a digit in the box names no task either
        assert screen.task_name is None and screen.query_one("#task-name", Input).value == "4"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert len(screen.sent) == 1 and isinstance(app.screen, SubmitScreen)
        await pilot.press("ctrl+l", *"health", "enter")  # Enter puts the pick in the box
        assert screen.task_name == "proj.tasks.health"
        assert screen.query_one("#task-name", Input).value == "proj.tasks.health"
        screen.query_one("#args", TextArea).text = "[]"
        await wait_until(pilot, lambda: "ready" in problems_text(screen), 30)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.task_id != first, 30)
        last = app.screen.task_id
        await wait_until(pilot, lambda: (r := stack.events.get(last)) is not None and r.state == "SUCCESS", 60)
        # what reached the worker: the first resize_image and health, nothing between them
        names = sorted(r.name for r in stack.events.query(limit=100))
        assert names == ["proj.tasks.health", "proj.tasks.resize_image"], names

        await pilot.press("3")
        await wait_until(pilot, lambda: isinstance(app.screen, WorkersScreen), 10)
        workers = app.screen
        await wait_until(pilot, lambda: any(w.online and w.concurrency for w in workers.data.workers), 60)
        row = next(w for w in workers.data.workers if w.online)
        assert row.process == "worker:celery"
        before = row.concurrency
        await pilot.press("plus")
        await wait_until(pilot, lambda: next(w.concurrency for w in workers.data.workers
                                             if w.hostname == row.hostname) == before + 1, 60)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, WorkerDetailScreen), 10)
        detail = app.screen
        await wait_until(pilot, lambda: detail.report is not None and detail.report.answered, 30)
        report = detail.report
        assert (report.concurrency, len(report.processes)) == (before + 1, before + 1), report
        assert f"× {before + 1}[/b] (processes {', '.join(map(str, report.processes))})" in \
            summary_text(report, row.hostname, "worker:celery")
        await quit_launched(pilot)


@sync
async def test_quit_with_a_projects_running_and_queued_tasks_asks_and_waits(tmp_path, in_project):
    """Item 9 of #20 on a user's project: ctrl+q with import_csv tasks running and queued asks first, says
    that the waiting ones stay in Stalk's redis, and `w` lets the running ones finish before quitting; the
    waiting ones run at the next start, none lost."""
    config = project_config(tmp_path)
    app = launching_app(config, *UP_FLAGS)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 90)
        stack = app.stack  # the stack process, over its API
        # more than the worker runs and prefetches (its pool, 4 messages a process): some stay queued
        stats = await wait_until_value(pilot, lambda: stack.control.inspect("stats", timeout=2.0))
        slots = next(iter(stats.values()))["pool"]["max-concurrency"] * 5
        ids = [stack.control.submit({"name": "proj.tasks.import_csv", "args": [f"f{i}.csv"],
                                     "kwargs": {"rows": 60}}).id for i in range(slots + 3)]

        def running() -> set[str]:
            return {i for i in ids if (r := stack.events.get(i)) is not None and r.state in RUNNING}

        await wait_until(pilot, lambda: running(), 60)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 15)
        quit_screen = app.screen
        asked = str(quit_screen.query_one("#question", Label).render())
        fate = str(quit_screen.query_one("#detail", Label).render())
        assert "running" in asked and "queued" in asked, asked
        assert "stay in Stalk's broker and run at the next start" in fate, fate
        launched = app.runtime.launched
        await pilot.press("w")
        ran = running()
        await wait_until(pilot, lambda: app.phase.kind == "stopping", 15)
        await wait_until(pilot, lambda: not app.is_running, 120)
    assert launched is not None and launched.wait(60) == 0
    history = EventStore(history=config.paths.history_db).start()  # what the stack kept of them
    try:
        assert ran and all(history.get(i).state == "SUCCESS" for i in ran)
    finally:
        history.stop()

    again = Stack(config).start(wait=True, timeout=90)
    try:
        for i, task_id in enumerate(ids):
            assert again.app.AsyncResult(task_id).get(timeout=120) == {"path": f"f{i}.csv", "rows": 60}
    finally:
        again.stop()


@sync
async def test_a_projects_quota_is_exhausted_when_the_next_call_does_not_fit(tmp_path, monkeypatch):
    """Item 10 of #20 on a user's project metering its own task (`from stalk.quota import metered`): 1,000
    normal units and calls of 51; after 19 calls 31 units are left and the 20th is refused. The quota is
    exhausted for such calls (`stalk quota --json`), and the Quota screen says since when, never a
    forecast ("runs out in ...") of a time that has passed."""
    config = dataclasses.replace(make_config(tmp_path / "data", app="maps.celery:app", broker={"mode": "redis"},
                                             beat=False), app_dir=METERED)
    monkeypatch.chdir(METERED)  # where the user runs `stalk`: the stack process it starts imports from there
    app = launching_app(config, "-A", "maps.celery:app", "--broker", "redis", "--no-beat")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 90)
        stack = app.stack  # the stack process, over its API
        ids = [stack.control.submit({"name": "maps.tasks.geocode", "args": [f"{i} Main St"]}).id for i in range(20)]

        def states() -> list[str]:
            return sorted((r.state if (r := stack.events.get(i)) else "PENDING") for i in ids)

        await wait_until(pilot, lambda: all(state in ("SUCCESS", "FAILURE") for state in states()), 90)
        assert states() == ["FAILURE"] + ["SUCCESS"] * 19
        refused = next(stack.events.get(i) for i in ids if stack.events.get(i).state == "FAILURE")
        assert "QuotaExhausted" in str(refused.exception)

        out = subprocess.run(stalk_cmd("quota", "--json", "--data-dir", str(config.data_dir)), cwd=tmp_path,
                             env=clean_env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        geo = next(q for q in json.loads(out.stdout) if q["name"] == "geo")
        assert (geo["used"], geo["exhausted"]) == (969, True), geo

        await pilot.press("5")
        await wait_until(pilot, lambda: isinstance(app.screen, QuotaScreen), 10)
        summary = app.screen.query_one("#quota-summary")
        await wait_until(pilot, lambda: "exhausted since" in str(summary.render()), 30)
        text = str(summary.render())
        assert "31 units left, too few for a 51-unit call" in text and "runs out" not in text, text
        await quit_launched(pilot)
