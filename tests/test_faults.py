"""Fault injection against real processes: kill workers and the broker mid-flight, inject hostile input."""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
import redis
from kombu import Connection

from stalk.embedded import ProcState

from .conftest import broker_redis, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.fault, pytest.mark.xdist_group("faults")]

APP = "tests.apps.fault_app:app"
VISIBILITY = 8  # seconds: how long an unacked message of a dead worker waits before it is redelivered


@pytest.fixture(autouse=True)
def collect_while_up(running_stack):
    """Free the test's garbage while its stacks still run (this fixture is torn down before them): a
    celery AsyncResult freed after its broker is gone (often in a cycle with an exception raised while
    the broker was down) tries, and fails noisily, to unsubscribe from it."""
    yield
    gc.collect()


def ledger(stack) -> redis.Redis:
    return broker_redis(stack.broker.broker_url, 2)


def runs(stack) -> Counter:
    return Counter(entry.decode().split(":")[0] for entry in ledger(stack).lrange("runs", 0, -1))


def redelivered_ids(stack) -> set[str]:
    return {e.decode().split(":")[0] for e in ledger(stack).lrange("runs", 0, -1) if e.decode().endswith(":1")}


def fault_stack(running_stack, **flags):
    flags.setdefault("broker", {})
    flags["broker"] = {"mode": "redis", "visibility_timeout": VISIBILITY, **flags["broker"]}
    return running_stack(
        app=APP, beat=False, supervisor={"backoff_initial": 0.2, "reload": False},
        workers=[{"name": "faults", "queues": ["faults"], "concurrency": 4}], **flags,
    )


def test_sigkill_worker_with_200_tasks_loses_none(running_stack):
    """acks_late + reject_on_worker_lost: every task runs; a second run only for a redelivered task."""
    stack = fault_stack(running_stack)
    results = [stack.app.send_task("faults.sleepy", (0.05,), queue="faults") for _ in range(200)]
    wait_until(lambda: sum(runs(stack).values()) >= 20)
    os.killpg(stack.process("worker:faults").pid, signal.SIGKILL)
    wait_until(lambda: stack.process("worker:faults").restarts == 1)
    ids = {r.id for r in results}
    for r in results:
        try:
            assert r.get(timeout=120) == r.id
        except Exception as exc:
            broker = broker_redis(stack.broker.broker_url)
            rec = stack.events.get(r.id)
            raise AssertionError(
                f"{r.id}: store {rec.state if rec else None}, runs {runs(stack).get(r.id)}, backend "
                f"{r.state}, queue {broker.llen('faults')}, unacked {broker.hlen('unacked')} "
                f"{broker.hkeys('unacked')[:3]}, worker {stack.process('worker:faults').state}") from exc
    del results, r
    gc.collect()  # results freed after the broker is gone would retry unsubscribing from it
    counts = runs(stack)
    assert set(counts) == ids, f"{len(ids - set(counts))} tasks lost"
    twice = {task_id for task_id, n in counts.items() if n > 1}
    redelivered = redelivered_ids(stack)
    assert twice <= redelivered, (f"{len(twice - redelivered)} of {len(twice)} tasks ran twice without being "
                                  f"reported as redelivered ({len(redelivered)} were)")
    assert redelivered, f"the kill caught no task in flight: the redelivery path was not exercised ({counts})"
    assert_store_finished(stack, ids)


def test_a_message_a_killed_worker_popped_but_never_recorded_is_re_published(running_stack):
    """kombu pops a message (BRPOP) and records it as unacked (HSET) in two steps: a worker killed between
    them loses it. Here the pop is done by hand, then the worker is killed: the journal puts it back."""
    stack = fault_stack(running_stack)
    stack.stop_process("worker:faults")
    result = stack.app.send_task("faults.sleepy", (0.01,), queue="faults")
    broker = broker_redis(stack.broker.broker_url)
    assert wait_until(lambda: broker.rpop("faults"))  # in no queue, no unacked table: only a dead worker had it
    stack.start_process("worker:faults")
    stack.supervisor.wait_for(["worker:faults"], 60)
    os.killpg(stack.process("worker:faults").pid, signal.SIGKILL)
    assert result.get(timeout=60) == result.id
    assert stack.journal.republished_ids == [result.id]
    assert runs(stack) == Counter({result.id: 1})


def assert_store_finished(stack, ids: set[str]) -> None:
    """The event store (what the panel shows) ends with every task SUCCESS: none left STARTED or LOST.
    Celery's task events carry no redelivered flag, so runs are counted by the ledger above."""
    for task_id in ids:
        assert stack.events.wait_for(task_id, "SUCCESS", timeout=30) is not None, stack.events.get(task_id)
    records = stack.events.query(name="faults.sleepy", limit=None)
    assert {r.task_id for r in records} == ids
    assert {r.state for r in records} == {"SUCCESS"}
    assert all(r.result and r.worker and r.worker.startswith("faults@") for r in records)


def burst_across_broker_kill(stack, before: int = 200, after: int = 100) -> list[str]:
    """Submit from a thread without pause; SIGKILL the broker after `before` accepted submissions and go
    on until `after` more were accepted by the restarted one. Returns the ids `send_task` returned."""
    accepted: list[str] = []
    stop = threading.Event()

    def submit() -> None:
        while not stop.is_set():
            try:
                accepted.append(stack.app.send_task("faults.noop", (len(accepted),), queue="faults").id)
            except Exception:  # broker down: this submission was refused, so it is not counted
                time.sleep(0.05)

    sender = threading.Thread(target=submit)
    sender.start()
    try:
        wait_until(lambda: len(accepted) >= before)
        os.kill(stack.broker.pid, signal.SIGKILL)
        wait_until(lambda: stack.process("broker").restarts == 1)
        wait_until(lambda: stack.process("broker").state is ProcState.RUNNING)
        count = len(accepted)
        wait_until(lambda: len(accepted) >= count + after, timeout=60)
    finally:
        stop.set()
        sender.join()
    return accepted


def test_sigkill_broker_during_burst_with_appendfsync_always(running_stack):
    """Every submission that returned an id is executed after Stalk restarts its redis-server."""
    stack = fault_stack(running_stack, broker={"appendfsync": "always"})
    accepted = burst_across_broker_kill(stack)
    missing = set(accepted)

    def all_ran() -> bool:
        missing.difference_update(runs(stack))
        return not missing

    try:
        wait_until(all_ran, timeout=120, every=1.0)
    except AssertionError:
        raise AssertionError(f"{len(missing)} of {len(accepted)} accepted submissions never ran "
                             f"(journal re-published {stack.journal.republished})") from None
    print(f"journal re-published {stack.journal.republished} of {len(accepted)}")


def test_pickle_message_is_rejected_and_worker_stays_up(running_stack, tmp_path):
    """A pickle payload never gets unpickled (JSON only) and the worker keeps serving."""
    stack = fault_stack(running_stack)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with Connection(stack.broker.broker_url) as conn:
        conn.Producer().publish(
            Exploit(), routing_key="faults", serializer="pickle",
            headers={"task": "faults.noop", "id": str(uuid.uuid4()), "lang": "py", "argsrepr": "", "kwargsrepr": ""},
        )
    wait_until(lambda: any("untrusted content" in line.text or "Refusing to deserialize" in line.text
                           for line in stack.logs("worker:faults")), timeout=30)
    assert not marker.exists()
    assert stack.process("worker:faults").state is ProcState.READY
    assert stack.process("worker:faults").restarts == 0
    assert stack.app.send_task("faults.noop", (7,), queue="faults").get(timeout=30) == 7


def _non_loopback_addresses() -> list[str]:
    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                found.append(a.address)
    return found


@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_broker_refuses_non_loopback_and_unauthenticated(running_stack, mode):
    stack = running_stack(broker={"mode": mode, "listen": "tcp"}, beat=False, workers=[])
    port = stack.broker.port
    for address in _non_loopback_addresses():
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=2).close()
    client = redis.Redis(port=port, socket_timeout=5)
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        client.set("k", "v")
