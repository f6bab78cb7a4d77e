"""Control over the stack's API: a real stack (embedded broker, the demo's `stalk worker` children) driven
through its Unix socket, raw (StackClient: statuses and JSON) and as the panel does (RemoteStack.control)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import pytest

from stalk.embedded import Stack
from stalk.embedded.control import BadInput, BeatEntry, SubmitError, WorkerReport
from stalk.embedded.service import ApiError, RemoteStack, StackClient

from .api_support import client_of, remote_of
from .conftest import ROOT, clean_env, module_stack, stalk_cmd, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("api-control")]
HOST = socket.gethostname()
DEFAULT = f"default@{HOST}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("api-control") / "data", broker={"mode": "embedded"},
                      beat=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[StackClient]:
    with client_of(stack) as api:
        yield api


@pytest.fixture(scope="module")
def remote(stack: Stack) -> Iterator[RemoteStack]:
    with remote_of(stack) as view:
        yield view


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """A pool grown here stays the module stack's: module_stack checks that nothing outlives the stack."""
    yield


def refused(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_task_types_carry_signature_doc_and_route(client: StackClient) -> None:
    types = {t["name"]: t for t in client.get("/task-types")}
    assert types["demo.add"] == {"name": "demo.add", "signature": "demo.add(x: 'int', y: 'int')",
                                 "doc": "Add two numbers.", "queue": "default"}
    assert not [n for n in types if n.startswith("celery.")]
    assert client.get("/task-types/demo.slow_add")["queue"] == "slow"
    missing = refused(client.get, "/task-types/demo.addd")
    assert missing.status == 404 and "did you mean demo.add?" in missing.message


def test_submit_sends_a_valid_request_and_waits_for_it(client: StackClient) -> None:
    sent = client.post("/submit", {"name": "demo.add", "args": "[2, 3]", "priority": 5}, wait=20)
    assert sent["name"] == "demo.add" and sent["queue"] == "default" and sent["eta"] is None
    assert sent["outcome"] == {"state": "SUCCESS", "result": 5, "error": None}
    later = client.post("/submit", {"name": "demo.add", "args": [1, 1], "countdown": 30})
    assert later["eta"] is not None  # when it runs, for a countdown


def test_invalid_submits_are_400_and_send_nothing(stack: Stack, client: StackClient) -> None:
    bad_json = refused(client.post, "/submit", {"name": "demo.add", "args": "[1,", "task_id": "never-1"})
    assert bad_json.status == 400
    assert bad_json.message == "not sent: args: invalid JSON at line 1, column 4: Expecting value"
    assert bad_json.body["problems"] == [{"severity": "error", "field": "args",
                                          "message": "args: invalid JSON at line 1, column 4: Expecting value"}]
    unknown = refused(client.post, "/submit", {"name": "demo.nope", "args": [1], "task_id": "never-2"})
    assert unknown.status == 400 and "task 'demo.nope': not registered on any worker" in unknown.message
    wrong = refused(client.post, "/submit", {"name": "demo.add", "args": [1], "task_id": "never-3"})
    assert wrong.status == 400 and "missing 1 required positional argument: 'y'" in wrong.message
    field = refused(client.post, "/submit", {"name": "demo.add", "colour": "red"})
    assert field.status == 400 and "unknown field(s) colour" in field.message
    # a valid task sent after them arrives; none of the refused ones ever does
    marker = client.post("/submit", {"name": "demo.add", "args": [0, 0]}, wait=20)["task_id"]
    wait_until(lambda: stack.events.get(marker), timeout=10)
    for task_id in ("never-1", "never-2", "never-3"):
        assert stack.events.get(task_id) is None
        assert stack.app.AsyncResult(task_id).state == "PENDING"


def test_validate_lists_problems_without_sending(client: StackClient, remote: RemoteStack) -> None:
    assert client.post("/submit/validate", {"name": "demo.add", "args": [1, 2]}) == []
    (problem,) = client.post("/submit/validate", {"name": "demo.add", "args": [1, 2], "queue": "nobody"})
    assert problem["severity"] == "error" and problem["message"].startswith("queue 'nobody': no worker consumes it")
    (problem,) = remote.control.validate_submit({"name": "demo.add", "args": [1, 2], "priority": "12"})
    assert (problem.severity, problem.field) == ("error", "priority")
    context = remote.control.context()
    assert "demo.add" in (context.tasks or ()) and "slow" in (context.queues or ())


def test_remote_submit_chain_group_and_their_errors(remote: RemoteStack) -> None:
    control = remote.control
    sent = control.submit({"name": "demo.add", "args": [4, 4]}, wait=20)
    assert sent.id and sent.outcome["result"] == 8
    with pytest.raises(SubmitError) as caught:
        control.submit({"name": "demo.add", "args": "[1,"})
    assert [p.field for p in caught.value.problems] == ["args"]
    chained = control.chain([{"name": "demo.add", "args": [1, 2]}, {"name": "demo.add", "args": "[10]"}], wait=20)
    assert chained.outcome["result"] == 13
    group = control.group([{"name": "demo.add", "args": [i, i]} for i in range(3)], wait=20)
    assert group.outcome["result"] == [0, 2, 4] and len(group.results) == 3
    assert control.group_progress(group.id) == (3, 3)
    with pytest.raises(SubmitError, match="step 2: task 'demo.nope'"):
        control.chain([{"name": "demo.add", "args": [1, 2]}, {"name": "demo.nope"}])
    with pytest.raises(BadInput, match="unknown"):
        control.group_progress("no-such-group")


def test_revoke_one_and_many(client: StackClient, remote: RemoteStack) -> None:
    later = client.post("/submit", {"name": "demo.add", "args": [1, 1], "countdown": 60})["task_id"]
    assert remote.control.revoke_entry(later) is None
    assert client.post(f"/tasks/{later}/revoke", {}) == {"revoked": [later], "terminate": False,
                                                         "signal": "SIGTERM"}
    entry = remote.control.revoke_entry(later)
    assert entry is not None and entry.task_id == later and not entry.terminate
    assert later in remote.control.revoked()
    typo = refused(client.post, "/revoke", {"task_ids": ["not-a-task-anyone-sent"]})
    assert typo.status == 404 and typo.body["unknown"] == ["not-a-task-anyone-sent"]
    assert remote.control.unknown_task_ids([later, "zz-unknown"]) == ["zz-unknown"]
    bad = refused(client.post, "/revoke", {"task_ids": ["a b"]})
    assert bad.status == 400 and "not a task id" in bad.message
    assert refused(client.post, "/revoke", {"task_ids": [later], "signal": "SIGNOPE"}).status == 400
    remote.control.revoke_many(["forced-1", "forced-2"], terminate=True, signal="KILL")
    assert remote.control.revoke_entry("forced-2").signal == "SIGKILL"


def test_worker_report_inspect_and_unknown_worker(client: StackClient, remote: RemoteStack) -> None:
    report = remote.control.worker_report(DEFAULT)
    assert isinstance(report, WorkerReport) and report.answered and report.pool == "prefork"
    assert "default" in report.queues and "demo.add" in report.registered
    assert remote.control.worker_report("ghost@nowhere", timeout=0.3).answered is False
    assert set(remote.control.inspect("ping")) >= {DEFAULT, f"slow@{HOST}"}
    assert list(remote.control.inspect("active_queues", DEFAULT)) == [DEFAULT]
    assert refused(client.get, "/inspect/everything").status == 400
    ghost = refused(client.post, "/workers/ghost@nowhere/pool/grow", {"n": 1})
    assert ghost.status == 404 and DEFAULT in ghost.message
    with pytest.raises(BadInput, match="no worker by that name answers"):
        remote.control.require_worker("ghost@nowhere", timeout=0.3)
    assert remote.control.require_worker(DEFAULT) == DEFAULT


def test_pool_grow_and_shrink(client: StackClient, remote: RemoteStack) -> None:
    before = remote.control.worker_report(DEFAULT).concurrency
    assert refused(client.post, f"/workers/{DEFAULT}/pool/grow", {"n": 0}).status == 400
    assert remote.control.pool_grow(DEFAULT, 1) == [{DEFAULT: {"ok": "pool will grow"}}]
    wait_until(lambda: remote.control.worker_report(DEFAULT).concurrency == before + 1, timeout=20)
    remote.control.pool_shrink(DEFAULT, 1)
    wait_until(lambda: remote.control.worker_report(DEFAULT).concurrency == before, timeout=20)


def test_rate_and_time_limits(client: StackClient, remote: RemoteStack) -> None:
    replies = remote.control.rate_limit("demo.add", "100/s", DEFAULT)
    assert replies == [{DEFAULT: {"ok": "new rate limit set successfully"}}]
    with pytest.raises(BadInput, match="not a rate"):
        remote.control.rate_limit("demo.add", "fast")
    assert refused(client.post, "/task-types/demo.nope/rate-limit", {"rate": "1/s"}).status == 404
    assert remote.control.time_limit("demo.add", soft=30, hard=60, destination=DEFAULT)
    soft_above = refused(client.post, "/task-types/demo.add/time-limit", {"soft": 10, "hard": 5})
    assert soft_above.status == 400 and "above the hard limit" in soft_above.message


def test_beat_entries_and_run_now(client: StackClient, remote: RemoteStack) -> None:
    entries = {e.name: e for e in remote.control.beat_entries()}
    assert isinstance(entries["health-check"], BeatEntry) and entries["health-check"].task == "demo.health_check"
    assert entries["cleanup-daily"].kwargs == {"days": 30} and entries["cleanup-daily"].next_run is not None
    sent = remote.control.run_beat_entry("health-check", wait=20)
    assert sent.outcome["state"] == "SUCCESS" and sent.outcome["result"]["status"] == "healthy"
    runs = {e.name: e for e in remote.control.beat_entries()}["health-check"]
    assert runs.total_run_count == entries["health-check"].total_run_count + 1 and runs.last_task_id == sent.id
    missing = refused(client.post, "/beat/entries/no-such-entry/run")
    assert missing.status == 404 and "health-check" in missing.message


def test_queues_depths_and_purge(stack: Stack, client: StackClient, remote: RemoteStack) -> None:
    assert {"default", "slow"} <= set(remote.control.known_queues())
    ids = [stack.app.send_task("demo.add", (1, 1), queue="parked").id for _ in range(3)]
    wait_until(lambda: remote.control.queue_depths().get("parked") == 3, timeout=30)  # known from task-sent events
    assert client.post("/queues/parked/purge", {"by": "a test"}) == {"queue": "parked", "purged": 3}
    assert remote.control.queue_depths()["parked"] == 0
    wait_until(lambda: all(getattr(stack.events.get(t), "state", None) == "PURGED" for t in ids), timeout=10)
    assert " by a test (" in stack.events.get(ids[0]).exception
    unknown = refused(client.post, "/queues/nowhere/purge")
    assert unknown.status == 404 and "no such queue" in unknown.message
    with pytest.raises(BadInput, match="no such queue"):
        remote.control.purge("nowhere")


def stalk(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stalk_cmd(*args, "--data-dir", str(stack.paths.data_dir)), cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=120)


def test_cli_control_commands_over_the_api(stack: Stack) -> None:
    """The commands that do not send tasks ask the running stack's API: same output, same exit codes."""
    rows = {r["hostname"]: r for r in json.loads(stalk(stack, "workers", "--json").stdout)}
    assert rows[DEFAULT]["online"] and rows[DEFAULT]["pool"] == "prefork" and "default" in rows[DEFAULT]["queues"]
    entries = json.loads(stalk(stack, "beat-entries", "--json").stdout)
    assert "health-check" in {e["name"] for e in entries}
    unknown_task = stalk(stack, "rate-limit", "demo.nope", "1/s")
    assert unknown_task.returncode == 2 and unknown_task.stdout == ""
    assert unknown_task.stderr.startswith("stalk: error: task 'demo.nope': not registered on any worker")
    ghost = stalk(stack, "pool", "ghost@nowhere", "grow")
    assert ghost.returncode == 2 and "no worker by that name answers" in ghost.stderr
    nowhere = stalk(stack, "queues", "--purge", "nowhere")
    assert nowhere.returncode == 2 and "queue 'nowhere': no such queue" in nowhere.stderr
    ok = stalk(stack, "rate-limit", "demo.add", "50/s", "-d", DEFAULT)
    assert ok.returncode == 0 and ok.stdout == "demo.add: rate limit 50/s on 1 worker(s)\n", ok.stderr
