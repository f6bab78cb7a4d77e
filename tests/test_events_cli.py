"""`stalk tasks`: the history db read by the real CLI (table, JSON, filters, one-line errors)."""

from __future__ import annotations

import json
import subprocess

import pytest

from stalk.embedded.events import EventStore

from .conftest import clean_env, stalk_cmd

pytestmark = pytest.mark.procs  # every test runs the real CLI, `python -m stalk tasks`


def run(data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stalk_cmd("tasks", "--data-dir", str(data_dir), *args), capture_output=True,
                          text=True, env=clean_env(), timeout=60)


def seed_history(data_dir) -> None:
    store = EventStore(history=data_dir / "state" / "history.sqlite3").start()
    for i, end in enumerate(["task-succeeded", "task-failed", "task-succeeded"]):
        base = {"uuid": f"id-{i}", "hostname": "w@h", "timestamp": 100.0 + i}
        store.ingest_many([
            dict(base, type="task-received", name="demo.add" if i != 1 else "demo.boom", args=f"({i},)",
                 kwargs="{}", retries=0),
            dict(base, type="task-started"),
            dict(base, type=end, result=str(i), runtime=0.25, exception="ValueError('no\\nway')"),
        ])
    store.stop()


def test_tasks_table_json_and_filters(tmp_path):
    data_dir = tmp_path / "data"
    seed_history(data_dir)
    table = run(data_dir)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("TASK ID") and [line.split()[0] for line in lines[1:]] == ["id-2", "id-1", "id-0"]
    assert "ValueError('no\\nway')" in lines[2]
    failed = run(data_dir, "--state", "failure", "--json")
    assert failed.returncode == 0
    rows = json.loads(failed.stdout)
    assert [(r["task_id"], r["name"], r["state"]) for r in rows] == [("id-1", "demo.boom", "FAILURE")]
    limited = json.loads(run(data_dir, "--name", "add", "--limit", "1", "--json").stdout)
    assert [r["task_id"] for r in limited] == ["id-2"]


def test_tasks_errors_are_one_line(tmp_path):
    data_dir = tmp_path / "data"
    empty = run(data_dir, "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    (data_dir / "state").mkdir(parents=True)
    (data_dir / "state" / "history.sqlite3").write_bytes(b"garbage" * 1000)
    corrupt = run(data_dir)
    assert corrupt.returncode == 1
    assert corrupt.stderr.count("\n") == 1 and "cannot read task history" in corrupt.stderr
    bad_state = run(data_dir, "--state", "NOPE")
    assert bad_state.returncode == 2 and "Traceback" not in bad_state.stderr
