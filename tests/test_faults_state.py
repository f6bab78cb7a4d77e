"""Fault injection on Stalk's own state: Stalk itself SIGKILLed, corrupt stores at start, a revoke made
while every worker is down."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import uuid

import psutil
import pytest

import stalk.embedded.control.client as client
from stalk.embedded import ConfigError, ProcState, Stack
from stalk.embedded.events import read_tasks

from .conftest import ROOT, clean_env, stalk_cmd, wait_until
from .test_faults import (
    APP,
    collect_while_up,  # noqa: F401 (autouse)
    fault_stack,
    runs,
)
from .test_stack import _read_until

pytestmark = [pytest.mark.procs, pytest.mark.fault, pytest.mark.xdist_group("faults")]


def history_ids(path, state: str = "SUCCESS") -> set[str]:
    return {row["task_id"] for row in read_tasks(path, state=state, limit=10_000)} if path.exists() else set()


def test_sigkill_of_stalk_up_leaves_no_child_and_the_next_start_has_the_history(config_factory, running_stack,
                                                                               record_property):
    """Tasks the killed Stalk had recorded are in the next start's history, and so are the tasks that finished
    just before the kill (not yet written, ~0.5 s): rebuilt from their extended results."""
    config = config_factory(app=APP, broker={"mode": "redis"}, beat=False)
    proc = subprocess.Popen(
        stalk_cmd("up", "--data-dir", str(config.data_dir), "--broker", "redis", "-A", APP, "--no-beat"),
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(proc, "stack is up")
        children = psutil.Process(proc.pid).children(recursive=True)
        local = client.local_stack(config)
        control = client.connect(config, local.broker_url or "", local.backend_url, None)
        results = [control.app.send_task("faults.noop", (i,), queue="faults") for i in range(20)]
        assert [r.get(timeout=60) for r in results] == list(range(20))
        done = {r.id for r in results}
        del results
        gc.collect()  # results freed after the broker is gone would retry unsubscribing from it
        wait_until(lambda: done <= history_ids(config.paths.history_db))  # recorded by the running Stalk
        last = [control.app.send_task("faults.noop", (i,), queue="faults") for i in range(10)]
        assert [r.get(timeout=60) for r in last] == list(range(10))
        last_ids = {r.id for r in last}
        del last
        gc.collect()
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert len(children) >= 3  # broker, the worker and its pool
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [(c.pid, c.cmdline()[:4]) for c in alive]

    stack = running_stack(app=APP, broker={"mode": "redis"}, beat=False)  # same data dir
    assert stack.stale_killed == []  # nothing outlived the killed Stalk
    succeeded = {r.task_id for r in stack.events.query(state="SUCCESS", limit=None)}
    assert succeeded >= done

    def recovered() -> set[str]:
        return {r.task_id for r in stack.events.query(state="SUCCESS", limit=None) if r.task_id in last_ids}

    wait_until(lambda: recovered() == last_ids, timeout=30)
    record_property("stalk_sigkill_history_lost", len(last_ids - recovered()))
    assert {stack.events.get(task_id).name for task_id in last_ids} == {"faults.noop"}
    listed = subprocess.run(stalk_cmd("tasks", "--json", "--limit", "100", "--data-dir", str(config.data_dir)),
                            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {row["task_id"] for row in json.loads(listed.stdout) if row["state"] == "SUCCESS"} >= done
    assert stack.app.send_task("faults.noop", (7,), queue="faults").get(timeout=60) == 7


def test_revoke_while_the_worker_is_down_never_starts_the_task(running_stack):
    """Celery forgets revokes a worker did not hear; Stalk's revoke store re-applies it on restart."""
    stack = fault_stack(running_stack)
    doomed = str(uuid.uuid4())
    states: list[str] = []

    def watch(changes) -> None:
        if doomed in changes.tasks and (rec := stack.events.get(doomed)) is not None:
            states.append(rec.state)

    stack.events.subscribe(watch)
    stack.stop_process("worker:faults")
    wait_until(lambda: stack.process("worker:faults").state is ProcState.STOPPED)
    stack.control.submit({"name": "faults.noop", "args": [1], "task_id": doomed})
    stack.control.revoke(doomed)
    kept = stack.control.submit({"name": "faults.noop", "args": [2]})
    stack.start_process("worker:faults")
    assert kept.get(timeout=60) == 2
    rec = stack.events.wait_for(doomed, "REVOKED", timeout=30)
    assert rec is not None, stack.events.get(doomed)
    assert rec.started is None and "STARTED" not in states, states
    assert "task-started" not in [e.type for e in stack.events.events_of(doomed)]
    assert doomed not in runs(stack)
    del kept
    gc.collect()


def test_corrupt_stores_at_start_are_reported_and_kept(config_factory, caplog):
    """Quota db: start refused, file untouched. History db and revoke store: moved aside with a warning,
    the stack starts on new ones. Nothing is deleted or overwritten."""
    config = config_factory(app="tests.apps.quota_app:app", broker={"mode": "eager"}, beat=False)
    paths = config.paths
    paths.ensure()
    revokes = paths.state / "revoked.json"
    garbage = {paths.quota_db: b"not sqlite" * 50, paths.history_db: b"not a history" * 50,
               revokes: b'{"revoked": [{"task_id": "x", "revoked_at": "soon"'}
    for path, data in garbage.items():
        path.write_bytes(data)
    with pytest.raises(ConfigError, match="quota db .* is corrupt"):
        Stack(config).start()
    assert {path: path.read_bytes() for path in garbage} == garbage

    paths.quota_db.rename(paths.state / "quota.sqlite3.mine")  # what the user does about it
    caplog.set_level(logging.WARNING)
    with Stack(config) as stack:
        assert stack.control.revoked() == []
        stack.control.revoke("new-one")
        assert stack.control.revoked() == ["new-one"]
        assert stack.control.submit({"name": "quota.lookup", "args": ["x"]}).get(timeout=10) == "x"
    kept = {p.name.split(".corrupt-")[0]: p.read_bytes() for p in paths.state.glob("*.corrupt-*")}
    assert kept == {"history.sqlite3": garbage[paths.history_db], "revoked.json": garbage[revokes]}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("task history not loaded" in m and "moved to history.sqlite3.corrupt-" in m for m in warnings)
    assert any("revoke store" in m and "moved to revoked.json.corrupt-" in m for m in warnings)
    assert history_ids(paths.history_db)  # the new history works


def test_unreadable_worker_statedb_is_moved_aside_and_the_worker_starts(running_stack, config_factory):
    """Celery's --statedb (a shelve) that cannot be read would crash the worker at every restart."""
    paths = config_factory().paths
    paths.ensure()
    base = paths.worker_statedb("faults")
    garbage = {base.with_name(base.name + ".dir"): b"('zrevoked', (0, 12)\n{{{\n", base.with_name(base.name + ".dat"): b"x"}
    for path, data in garbage.items():
        path.write_bytes(data)
    stack = fault_stack(running_stack)
    assert stack.process("worker:faults").restarts == 0
    assert any("worker state db" in line.text and "is unreadable" in line.text and "moved aside" in line.text
               for line in stack.logs("worker:faults"))
    kept = {p.name.split(".corrupt-")[0]: p.read_bytes() for p in paths.state.glob(base.name + "*.corrupt-*")}
    assert kept == {path.name: data for path, data in garbage.items()}
    assert stack.app.send_task("faults.noop", (3,), queue="faults").get(timeout=60) == 3
