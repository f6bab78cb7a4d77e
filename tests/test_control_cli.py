"""`stalk submit|revoke|queues|workers|inspect|beat-entries|run-entry` as a user runs them: subprocesses
against a stack started by the test (found through its data dir) or by broker URL."""

from __future__ import annotations

import json
import subprocess

import pytest

from stalk.embedded.control import RevokeStore, revoke_store_path

from .conftest import ROOT, clean_env, stalk_cmd, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("control")]


def stalk(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(stalk_cmd(*args), cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc



@pytest.fixture
def stack(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    wait_until(lambda: (stack.paths.state / "status.json").exists())
    return stack


def test_submit_wait_and_validation(stack):
    dd = str(stack.paths.data_dir)
    sent = stalk("submit", "demo.add", "--args", "[2, 40]", "--wait", "--data-dir", dd)
    assert "to queue default" in sent.stdout and "result: 42" in sent.stdout
    out = json.loads(stalk("submit", "demo.slow_add", "--args", "[1, 2]", "--kwargs", '{"seconds": 0.1}',
                           "--priority", "7", "--task-id", "cli-id", "--wait", "--json", "--data-dir", dd).stdout)
    assert out == {"task_id": "cli-id", "name": "demo.slow_add", "queue": "slow", "state": "SUCCESS", "result": 3}
    bad = stalk("submit", "demo.add", "--args", "[1,\n 2", "--priority", "12", "--data-dir", dd, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = bad.stderr.splitlines()
    assert line.startswith("stalk: error: not sent: args: invalid JSON at line 2, column 3")
    assert "priority: must be 0-9" in line
    unknown = stalk("submit", "demo.nope", "--queue", "nobody", "--data-dir", dd, check=False)
    assert unknown.returncode == 2 and "not registered on any worker" in unknown.stderr
    assert "queue 'nobody': no worker consumes it" in unknown.stderr


def test_revoke_a_queued_task_and_list_the_store(stack):
    dd = str(stack.paths.data_dir)
    # the slow worker busy long enough for `stalk revoke` (a process start, then a look for the id in
    # history, backend, queues and workers: up to a second more when a worker holds it) to come first
    busy = [stack.app.send_task("demo.slow_add", (0, 0), {"seconds": 6}) for _ in range(2)]
    queued = stack.app.send_task("demo.slow_add", (5, 5), {"seconds": 0.1})
    done = stalk("revoke", queued.id, "--data-dir", dd)
    assert done.stdout.strip() == f"revoked 1 task(s): {queued.id}"
    assert [b.get(timeout=30) for b in busy] == [0, 0]
    wait_until(lambda: queued.state == "REVOKED")
    assert RevokeStore(revoke_store_path(dd)).ids() == [queued.id]
    listed = json.loads(stalk("revoked", "--json", "--data-dir", dd).stdout)
    assert [e["task_id"] for e in listed] == [queued.id]
    bad = stalk("revoke", "x", "--terminate", "--signal", "SIGNOPE", "--data-dir", dd, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == ("stalk: error: signal 'SIGNOPE': not a signal name "
                                                          "(e.g. SIGTERM, SIGKILL, SIGINT)")


def test_queues_purge_workers_inspect_and_external_mode(stack, tmp_path):
    dd = str(stack.paths.data_dir)
    for priority in (0, 4, 9):
        stack.app.send_task("demo.add", (1, 1), queue="parked", priority=priority)
    depths = json.loads(stalk("queues", "--json", "--data-dir", dd).stdout)
    assert depths["parked"] == 3 and depths["default"] == 0
    human = stalk("queues", "--data-dir", dd).stdout.splitlines()
    assert human[0].split() == ["QUEUE", "WAITING"] and "parked 3" in [" ".join(r.split()) for r in human]
    # external mode: the broker URL alone, from a data dir with no stack
    url = stack.broker.broker_url
    purged = stalk("queues", "--purge", "parked", "--broker-url", url, "--data-dir", str(tmp_path / "none"))
    assert purged.stdout.strip() == "purged 3 message(s) from parked"
    assert json.loads(stalk("queues", "--json", "--data-dir", dd).stdout)["parked"] == 0
    pings = json.loads(stalk("inspect", "ping", "--json", "--broker-url", url).stdout)
    assert len(pings) == 2 and all(v == {"ok": "pong"} for v in pings.values())
    rows = json.loads(stalk("workers", "--json", "--data-dir", dd).stdout)
    assert sorted(r["hostname"].split("@")[0] for r in rows) == ["default", "slow"]
    assert all(r["online"] and r["pool"] == "prefork" for r in rows)


def test_chain_and_group_from_the_command_line(stack):
    """Celery canvas as the seeds' pipelines use it; every step validated first, nothing sent when one is
    wrong (a chain's later steps get the previous result as their first argument)."""
    dd = str(stack.paths.data_dir)
    chained = stalk("chain", "demo.add [2, 3]", "demo.add [10]", "--wait", "--data-dir", dd)
    assert "sent chain of 2" in chained.stdout and "result: 15" in chained.stdout
    grouped = json.loads(stalk("group", "demo.add [1, 1]", 'demo.slow_add [2, 2] {"seconds": 0.1}', "--wait",
                               "--json", "--data-dir", dd).stdout)
    assert (grouped["steps"], grouped["state"], grouped["result"]) == (2, "SUCCESS", [2, 4])
    assert len(grouped["task_ids"]) == 2 and stack.control.group_progress(grouped["group"]) == (2, 2)
    for task_id in grouped["task_ids"]:
        assert stack.events.wait_for(task_id, "SUCCESS", timeout=20) is not None
    bad = stalk("group", "demo.add [1", "demo.nope", "--data-dir", dd, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = bad.stderr.splitlines()
    assert "step 1: args: invalid JSON" in line and "step 2: task 'demo.nope'" in line
    too_many = stalk("chain", "demo.add [2, 3]", "demo.add [1, 2]", "--data-dir", dd, check=False)
    assert too_many.returncode == 2 and "step 2: task 'demo.add'" in too_many.stderr
    failed = stalk("group", "demo.add [1, 2]", 'demo.fail ["boom"]', "--wait", "--data-dir", dd, check=False)
    assert failed.returncode == 1 and "FAILURE" in failed.stderr and "boom" in failed.stderr
    assert stalk("chain", "demo.add [1, 2]", "--data-dir", dd, check=False).returncode == 2  # one step: submit


def test_no_stack_and_unreachable_broker_are_one_line(tmp_path):
    none = stalk("queues", "--data-dir", str(tmp_path / "none"), check=False)
    assert none.returncode == 1 and len(none.stderr.splitlines()) == 1 and "no Stalk is running" in none.stderr
    down = stalk("workers", "--broker-url", "redis://127.0.0.1:1/0", check=False)
    assert down.returncode == 1 and len(down.stderr.splitlines()) == 1 and "unreachable" in down.stderr
    mode_flag = stalk("workers", "--broker", "redis://127.0.0.1:1/0", check=False)  # --broker is the mode
    assert mode_flag.returncode == 2 and "Did you mean '--broker-url'" in mode_flag.stderr


def test_beat_entries_and_run_entry(running_stack):
    stack = running_stack(broker={"mode": "redis"}, app="tests.apps.control_app:app", beat=False)
    dd, app = str(stack.paths.data_dir), "tests.apps.control_app:app"
    wait_until(lambda: (stack.paths.state / "status.json").exists())
    entries = json.loads(stalk("beat-entries", "--json", "-A", app, "--data-dir", dd).stdout)
    assert [e["name"] for e in entries] == ["tick", "nightly"]
    ran = stalk("run-entry", "nightly", "--wait", "-A", app, "--data-dir", dd)
    assert ran.stdout.strip().endswith(": 42")
    missing = stalk("run-entry", "nope", "-A", app, "--data-dir", dd, check=False)
    assert missing.returncode == 2 and "beat entry 'nope': not in the app's beat_schedule" in missing.stderr
