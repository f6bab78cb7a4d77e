"""Beat's sends counted live, on a real stack: tests/projects/include_proj (its 3-second `health-check`
entry) with its own redis-server, a `stalk worker` and a `stalk beat` child. Beat's default scheduler
writes its shelve only every 3 minutes, so the counts come from what the beat child sends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from stalk.embedded import Stack
from stalk.panel.screens.beat import BeatScreen
from tests.conftest import ROOT, clean_env, module_stack, stalk_cmd, wait_until

from .conftest import SIZE
from .harness import app_for, sync
from .test_task_screens import until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("beat-procs")]

PROJECT = ROOT / "tests" / "projects" / "include_proj"
APP = "proj.celery:app"


@contextmanager
def in_project() -> Iterator[None]:
    """Run from the project's folder as a user runs it (children inherit the cwd); forget its modules after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT)
        patch.syspath_prepend(str(PROJECT))
        try:
            yield
        finally:
            for name in [m for m in sys.modules if m == "proj" or m.startswith("proj.")]:
                del sys.modules[name]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The project's stack, for the tests that neither stop nor restart its processes."""
    with in_project(), module_stack(tmp_path_factory.mktemp("beat-procs") / "data", app=APP,
                                    broker={"mode": "redis"}) as running:
        yield running


def stalk(stack: Stack, *args: str) -> Any:
    out = subprocess.run(stalk_cmd(*args, "--json", "-A", APP, "--data-dir", str(stack.config.data_dir)),
                         cwd=PROJECT, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def cli_health(stack: Stack) -> dict[str, Any]:
    return next(e for e in stalk(stack, "beat-entries") if e["name"] == "health-check")


def health(stack: Stack) -> Any:
    assert stack.control is not None
    return next(e for e in stack.control.beat_entries() if e.name == "health-check")


def test_the_3s_entry_runs_grow_live_in_beat_entries(stack: Stack) -> None:
    first = wait_until(lambda: (e := cli_health(stack))["total_run_count"] >= 2 and e, timeout=60, every=0.5)
    later = wait_until(lambda: (e := cli_health(stack))["total_run_count"] > first["total_run_count"] and e,
                       timeout=60, every=0.5)
    assert datetime.fromisoformat(later["last_run"]) > datetime.fromisoformat(first["last_run"])
    assert later["last_task_id"] not in (None, first["last_task_id"]) and later["last_error"] is None
    assert datetime.fromisoformat(later["next_run"]) > datetime.fromisoformat(later["last_run"])
    # the id recorded is the task beat really sent: the worker ran it
    assert stack.events is not None
    done = wait_until(lambda: (r := stack.events.get(later["last_task_id"])) and r.state == "SUCCESS" and r,
                      timeout=60)
    assert done.name == "proj.tasks.health"


def test_run_now_is_counted_and_a_beat_restart_keeps_the_counts(running_stack: Any) -> None:
    with in_project():
        _run_now_and_restart(running_stack(app=APP, broker={"mode": "redis"}))


def _run_now_and_restart(stack: Stack) -> None:
    wait_until(lambda: health(stack).total_run_count >= 1, timeout=60)
    stack.stop_process("beat")  # nothing else sends: each run now is the only change
    before = health(stack)
    sent = stack.control.run_beat_entry("health-check")  # type: ignore[union-attr]
    after = health(stack)
    assert (after.total_run_count, after.last_task_id) == (before.total_run_count + 1, sent.id)
    assert after.last_run is not None and before.last_run is not None and after.last_run >= before.last_run
    out = stalk(stack, "run-entry", "health-check")
    seen = cli_health(stack)
    assert (seen["total_run_count"], seen["last_task_id"]) == (before.total_run_count + 2, out["task_id"])

    stack.start_process("beat")  # beat's shelve lags far behind: the counts go on from here, never back
    counts = [seen["total_run_count"]]

    def grown() -> bool:
        counts.append(health(stack).total_run_count)
        return counts[-1] >= seen["total_run_count"] + 2

    wait_until(grown, timeout=60, every=0.2)
    assert counts == sorted(counts)
    stack.restart_process("beat")
    wait_until(lambda: health(stack).total_run_count > counts[-1], timeout=60)


@sync
async def _runs_grow_on_the_beat_screen(stack: Stack) -> None:
    app = app_for(stack, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = await until(pilot, lambda: isinstance(app.screen, BeatScreen) and app.screen, "the Beat screen")

        def row() -> Any:
            return next((r for r in screen.data.rows if r.name == "health-check"), None)

        first = await until(pilot, lambda: (r := row()) is not None and r.total >= 1 and r, "a counted run", 60)
        later = await until(pilot, lambda: (r := row()).total >= first.total + 2 and r, "two more runs", 60)
        assert later.last_run is not None and first.last_run is not None and later.last_run > first.last_run
        cells = screen.query_one("#beat-table").get_row("health-check")
        assert str(cells[-1]) == f"{later.total:,}"  # what the table shows


def test_runs_grow_on_the_beat_screen(stack: Stack) -> None:
    _runs_grow_on_the_beat_screen(stack)
