"""Metered tasks in real `stalk worker` children: a task id is charged once however often it runs."""

from __future__ import annotations

import gc
import os
import signal
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from stalk.embedded.quota import QuotaLedger

from .conftest import broker_redis, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("quota")]

APP = "tests.apps.quota_app:app"
VISIBILITY = 6  # seconds before a dead worker's unacked message is redelivered


@pytest.fixture
def quota_stack(running_stack):
    """A stack on the quota test app. Results are collected while it still runs: a result freed after the
    broker is gone would try (and retry) to unsubscribe from it."""
    yield lambda: running_stack(
        app=APP, beat=False, broker={"mode": "redis", "visibility_timeout": VISIBILITY},
        supervisor={"backoff_initial": 0.2, "reload": False},
        workers=[{"name": "quota", "queues": ["quota"], "concurrency": 2}],
    )
    gc.collect()


def runs(stack, phase: str = "done") -> Counter:
    r = broker_redis(stack.broker.broker_url, 2)
    entries = [e.decode().split(":") for e in r.lrange("quota-runs", 0, -1)]
    return Counter(task_id for task_id, _redelivered, p in entries if p == phase)


def test_stack_start_defines_the_apps_quotas(quota_stack):
    stack = quota_stack()
    with QuotaLedger(stack.paths.quota_db, create=False) as ledger:
        assert [q.name for q in ledger.quotas()] == ["api"]
        status = ledger.status("api")
        assert (status.limit, status.used, status.reserved, status.remaining) == (50, 0, 10, 40)
        assert status.resets_at.tzinfo is not None


def test_same_task_id_sent_twice_is_charged_once(quota_stack):
    stack = quota_stack()
    task_id = str(uuid.uuid4())
    for _ in range(2):
        stack.app.send_task("quota.search", ("cats",), task_id=task_id, queue="quota")
    wait_until(lambda: runs(stack)[task_id] == 2, timeout=60)
    lookup = stack.app.send_task("quota.lookup", ("x",), queue="quota")
    assert lookup.get(timeout=30) == "x"
    with QuotaLedger(stack.paths.quota_db) as ledger:
        assert ledger.status("api").used == 5 + 1
        wait_until(lambda: ledger.reservation(task_id).state == "ok")
        keys = Counter(r.key for r in ledger.requests("api"))
        assert keys == {task_id: 1, lookup.id: 1}


@pytest.mark.fault
def test_redelivered_message_is_charged_once(quota_stack):
    """SIGKILL the worker mid-task: acks_late redelivers the message, which runs again uncharged."""
    stack = quota_stack()
    result = stack.app.send_task("quota.search", ("dogs", 3.0), queue="quota")
    wait_until(lambda: runs(stack, "start")[result.id] == 1, timeout=60)
    os.killpg(stack.process("worker:quota").pid, signal.SIGKILL)
    assert result.get(timeout=120) == "dogs"
    assert runs(stack, "start")[result.id] == 2, "the message was not delivered a second time"
    with QuotaLedger(stack.paths.quota_db) as ledger:
        assert ledger.status("api").used == 5
        assert [r.key for r in ledger.requests("api")] == [result.id]
        wait_until(lambda: ledger.reservation(result.id).state == "ok")


def test_priority_call_on_a_spent_quota_retries_at_the_reset(quota_stack):
    stack = quota_stack()
    with QuotaLedger(stack.paths.quota_db) as ledger:
        ledger.reserve("api", 50, "spent-it-all", priority=True)
        resets_at = ledger.status("api").resets_at
    normal = stack.app.send_task("quota.search", ("n",), queue="quota")
    try:
        normal.get(timeout=30)
        failure = None
    except Exception as exc:  # rebuilt from the result backend
        failure = (type(exc).__name__, str(exc))
    assert failure is not None and failure[0] == "QuotaExhausted" and "exhausted" in failure[1]
    urgent = stack.app.send_task("quota.search", ("p",), {"priority": True}, queue="quota")

    def scheduled_eta():
        replies = stack.app.control.inspect(timeout=1.0).scheduled() or {}
        for entries in replies.values():
            for entry in entries:
                if entry["request"]["id"] == urgent.id:
                    return entry["eta"]
        return None

    eta = wait_until(scheduled_eta, timeout=30)
    # waits for the reset in steps of half the visibility timeout (6 s here), never past the reset:
    # an ETA beyond the visibility timeout would be delivered twice by Redis (kombu#337)
    assert datetime.fromisoformat(eta) <= min(resets_at, datetime.now(resets_at.tzinfo) + timedelta(seconds=3.5))
    assert runs(stack, "start")[urgent.id] == 0
