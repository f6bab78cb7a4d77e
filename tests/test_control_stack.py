"""The control API against a real stack: redis-server plus `stalk worker` children."""

from __future__ import annotations

import socket

import pytest

from stalk.embedded import ProcState, Stack
from stalk.embedded.control import Control, ControlError, SubmitError
from stalk.embedded.control.queues import priority_names

from .conftest import broker_redis, make_config, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("control")]
HOST = socket.gethostname()



@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One stack for the tests that neither restart nor kill processes."""
    with Stack(make_config(tmp_path_factory.mktemp("control") / "data", broker={"mode": "redis"},
                           beat=False)) as running:
        yield running


def test_submit_returns_a_result(stack):
    control: Control = stack.control
    assert control.validate_submit({"name": "demo.add", "args": "[2, 3]"}) == []
    assert control.submit({"name": "demo.add", "args": "[2, 3]", "priority": 5}).get(timeout=20) == 5
    result = control.submit({"name": "demo.slow_add", "args": [1, 1], "kwargs": '{"seconds": 0.1}',
                             "task_id": "my-own-id", "expires": 60})
    assert result.id == "my-own-id" and result.get(timeout=20) == 2


def test_validation_asks_the_workers(stack):
    control: Control = stack.control
    assert {"demo.add", "demo.slow_add"} <= control.registered_tasks(refresh=True)
    (unknown,) = control.validate_submit({"name": "demo.addd"})
    assert "not registered on any worker; did you mean demo.add?" in unknown.message
    (queue,) = control.validate_submit({"name": "demo.add", "args": [1, 1], "queue": "nobody"})
    assert queue.message.startswith("queue 'nobody': no worker consumes it (consumed: ")
    assert "default, priority, processing, slow" in queue.message
    with pytest.raises(SubmitError, match="visibility timeout"):
        control.submit({"name": "demo.add", "args": [1, 1], "countdown": 4000})


def test_inspect_kinds(stack):
    control: Control = stack.control
    assert set(control.inspect("ping")) == {f"default@{HOST}", f"slow@{HOST}"}
    queues = control.inspect("active_queues", destination=f"slow@{HOST}")
    assert list(queues) == [f"slow@{HOST}"] and "slow" in {q["name"] for q in queues[f"slow@{HOST}"]}
    for kind in ("active", "reserved", "scheduled", "registered", "stats"):
        assert f"default@{HOST}" in control.inspect(kind)
    assert control.rate_limit("demo.add", "100/s", destination=f"default@{HOST}")
    assert control.time_limit("demo.add", soft=30, hard=60, destination=f"default@{HOST}")


def test_revoke_of_a_queued_task_prevents_it(stack):
    control: Control = stack.control
    busy = [control.submit({"name": "demo.slow_add", "args": [0, 0], "kwargs": {"seconds": 2}})
            for _ in range(2)]  # the slow worker runs two at a time
    queued = control.submit({"name": "demo.slow_add", "args": [5, 5], "kwargs": {"seconds": 0.1}})
    control.revoke(queued.id)
    assert queued.id in control.revoked()
    assert [b.get(timeout=20) for b in busy] == [0, 0]
    wait_until(lambda: queued.state == "REVOKED", timeout=20)


def test_queue_depths_count_priority_sub_queues_and_purge(stack):
    control: Control = stack.control
    ids = [stack.app.send_task("demo.add", (1, 1), queue="parked", priority=priority).id
           for priority in (0, 3, 5, 6, 9, 9)]
    client = broker_redis(stack.broker.broker_url)
    lengths = {name: client.llen(name) for name in priority_names("parked")}
    assert lengths == {"parked": 1, "parked\x06\x163": 2, "parked\x06\x166": 1, "parked\x06\x169": 2}
    depths = control.queue_depths()
    assert depths["parked"] == 6 and depths["default"] == 0 and depths["slow"] == 0
    wait_until(lambda: all(stack.events.get(task_id) for task_id in ids), timeout=10)  # their task-sent events
    assert control.purge("parked", by="a test") == 6
    assert control.queue_depths()["parked"] == 0
    # every priority list's messages are named: their tasks turn PURGED in the stack's store
    wait_until(lambda: all(stack.events.get(task_id).state == "PURGED" for task_id in ids), timeout=10)
    reason = stack.events.get(ids[0]).exception
    assert reason.startswith("purged from queue parked at ") and " by a test (" in reason


def test_chain_and_group(stack):
    control: Control = stack.control
    chained = control.chain([{"name": "demo.add", "args": [1, 2]}, {"name": "demo.add", "args": "[10]"}])
    assert chained.get(timeout=20) == 13
    group = control.group([{"name": "demo.add", "args": [i, i]} for i in range(4)]
                          + [{"name": "demo.slow_add", "args": [1, 1], "kwargs": {"seconds": 0.3}}])
    assert group.get(timeout=20) == [0, 2, 4, 6, 2]
    assert control.group_progress(group.id) == (5, 5)
    fresh = Control(stack.app, user_app=stack.user_app)  # another process: the group is read back
    assert fresh.group_progress(group.id) == (5, 5)
    with pytest.raises(SubmitError, match="step 2: task 'demo.nope'"):
        control.chain([{"name": "demo.add", "args": [1, 2]}, {"name": "demo.nope"}])


def test_terminate_stops_a_running_task(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    control: Control = stack.control
    long = control.submit({"name": "demo.slow_add", "args": [1, 1], "kwargs": {"seconds": 60}})
    wait_until(lambda: long.state == "PROGRESS", timeout=20)
    control.revoke(long.id, terminate=True, signal="SIGKILL")
    wait_until(lambda: long.state == "REVOKED", timeout=20)
    assert control.inspect("active", destination=f"slow@{HOST}")[f"slow@{HOST}"] == []
    assert control.submit({"name": "demo.slow_add", "args": [2, 2], "kwargs": {"seconds": 0.1}}).get(
        timeout=30) == 4


def processes_of(control: Control, host: str) -> int:
    return len(control.inspect("stats", destination=host)[host]["pool"]["processes"])


def test_pool_autoscale_and_shutdown(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    control: Control = stack.control
    host = f"default@{HOST}"
    before = processes_of(control, host)
    control.pool_grow(host, 1)
    wait_until(lambda: processes_of(control, host) == before + 1)
    control.pool_shrink(host, 1)
    wait_until(lambda: processes_of(control, host) == before)
    with pytest.raises(ControlError, match=f"autoscale on {host}: .*(?i:autoscal)"):
        control.autoscale(host, 4, 1)
    with pytest.raises(ControlError, match="did not answer"):
        control.pool_grow("ghost@nowhere", 1)
    control.shutdown(host)
    wait_until(lambda: stack.process("worker:default").restarts >= 1, timeout=30)
    wait_until(lambda: stack.process("worker:default").state is ProcState.READY, timeout=60)


def test_revoke_while_every_worker_is_down_still_holds(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    control: Control = stack.control
    workers = [p.name for p in stack.processes() if p.role == "worker"]
    for name in workers:
        stack.stop_process(name)
    wait_until(lambda: all(stack.process(n).state is ProcState.STOPPED for n in workers))
    doomed = control.submit({"name": "demo.add", "args": [1, 1]})
    control.revoke(doomed.id)
    kept = control.submit({"name": "demo.add", "args": [2, 2]})
    for name in workers:
        stack.start_process(name)
    assert kept.get(timeout=60) == 4
    wait_until(lambda: doomed.state == "REVOKED", timeout=20)


def test_eager_mode_submits_in_process(running_stack):
    stack = running_stack(broker={"mode": "eager"})
    control: Control = stack.control
    assert control.submit({"name": "demo.add", "args": "[20, 22]"}).get(timeout=5) == 42
    assert control.chain([{"name": "demo.add", "args": [1, 1]}, {"name": "demo.add", "args": [1]}]).get() == 3
    with pytest.raises(SubmitError, match="not registered"):
        control.submit({"name": "demo.nope"})


def test_beat_entries_and_run_now(running_stack):
    stack = running_stack(broker={"mode": "redis"}, app="tests.apps.control_app:app")
    control: Control = stack.control
    entries = {e.name: e for e in control.beat_entries()}
    assert set(entries) == {"tick", "nightly"}
    assert entries["tick"].schedule == "every 1 s" and entries["nightly"].schedule == "crontab 30 3 * * *"
    assert entries["nightly"].next_run.hour == 3 and entries["nightly"].next_run.minute == 30
    tick = wait_until(lambda: (e := {x.name: x for x in control.beat_entries()}["tick"]).total_run_count >= 2
                      and e, timeout=30)
    assert tick.last_run is not None and tick.next_run >= tick.last_run
    assert control.run_beat_entry("nightly").get(timeout=20) == 42
