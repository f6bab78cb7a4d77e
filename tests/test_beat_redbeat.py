"""Beat on RedBeat (celery-redbeat, a test dependency): the entries are read where RedBeat keeps them (Redis,
including one a program saved that is in no beat_schedule), and their runs counted live as beat sends them.
A real stack: its own redis-server, a `stalk worker` and a `stalk beat` running RedBeatScheduler."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from .conftest import clean_env, stalk_cmd, wait_until

pytest.importorskip("redbeat")
pytestmark = [pytest.mark.procs]

APP = "rbproj:app"
PROJECT = textwrap.dedent("""
    from celery import Celery

    app = Celery("rbproj")
    app.conf.beat_scheduler = "redbeat.RedBeatScheduler"
    app.conf.beat_max_loop_interval = 1  # RedBeat looks for due entries in Redis at least every second
    app.conf.beat_schedule = {"tick": {"task": "rbproj.tick", "schedule": 1.0, "args": [1]}}


    @app.task(name="rbproj.tick")
    def tick(n):
        return n
""")


def test_redbeat_entries_come_from_redis_and_their_runs_grow(running_stack: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rbproj.py").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        stack = running_stack(app=APP, broker={"mode": "redis"})
        from celery.schedules import schedule
        from redbeat import RedBeatSchedulerEntry

        control = stack.control
        with warnings.catch_warnings():  # RedBeat's fallbacks to the broker's settings, said explicitly
            warnings.simplefilter("error", DeprecationWarning)
            listed = wait_until(lambda: [e.name for e in control.beat_entries()], timeout=60)
        assert listed == ["tick"]  # stored in Redis by beat as it starts
        # an entry saved by a program, as RedBeat users do: in Redis only, not in the app's beat_schedule
        RedBeatSchedulerEntry("saved-by-code", "rbproj.tick", schedule(2.0), args=[2], app=control.app).save()

        def cli() -> dict[str, Any]:
            out = subprocess.run(stalk_cmd("beat-entries", "--json", "-A", APP, "--data-dir", str(stack.config.data_dir)),
                                 cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            return {e["name"]: e for e in json.loads(out.stdout)}

        first = wait_until(lambda: (e := cli()) and all(e.get(n, {}).get("total_run_count", 0) >= 1
                                                        for n in ("tick", "saved-by-code")) and e, timeout=60)
        assert set(first) == {"tick", "saved-by-code"}
        assert (first["saved-by-code"]["args"], first["saved-by-code"]["schedule"]) == ([2], "every 2 s")
        ticks = first["tick"]["total_run_count"]
        later = wait_until(lambda: (e := {x.name: x for x in control.beat_entries()}["tick"]).total_run_count
                           >= ticks + 2 and e, timeout=60)
        assert later.last_task_id and later.last_error is None
        assert stack.events is not None
        wait_until(lambda: (r := stack.events.get(later.last_task_id)) is not None and r.state == "SUCCESS",
                   timeout=60)

        sent = control.run_beat_entry("saved-by-code")  # run now finds it in Redis too, and counts it
        assert sent.get(timeout=30) == 2
        runs = wait_until(lambda: {x.name: x for x in control.beat_entries()}["saved-by-code"], timeout=5)
        assert runs.total_run_count >= first["saved-by-code"]["total_run_count"] + 1
    finally:
        for name in [m for m in sys.modules if m == "rbproj"]:
            del sys.modules[name]
