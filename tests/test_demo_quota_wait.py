"""A priority call waiting for the quota reset, without a broker: the steps stay under half the visibility
timeout, waiting steps are neither charged nor counted as failed attempts, and eager mode never spins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import stalk.embedded.quota.waiting as quota_wait
from stalk.embedded.demo.app import app
from stalk.embedded.demo.content import MAX_RETRIES, YOUTUBE_UNITS
from stalk.embedded.demo.sim import TransientError
from stalk.embedded.quota import QuotaLedger, forget_ledgers

KNOWN = "https://youtu.be/kJQP7kiw5Fk"  # in the fixtures, so in the cache
NOW = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


@pytest.fixture
def ledger_db(tmp_path, monkeypatch):
    monkeypatch.setitem(app.conf, "stalk_demo_data_dir", str(tmp_path))
    monkeypatch.setitem(app.conf, "stalk_quota_db", str(tmp_path / "quota.sqlite3"))
    monkeypatch.setenv("STALK_DEMO_SPEED", "1000")
    monkeypatch.setenv("STALK_DEMO_FAILURE_RATE", "0")
    yield tmp_path / "quota.sqlite3"
    forget_ledgers()


def analyze(*, retries: int = 0, headers: dict | None = None, priority: bool = False, task_id: str | None = None):
    return app.tasks["demo.analyze_youtube"].apply((KNOWN,), {"priority": priority}, retries=retries,
                                                   headers=headers, task_id=task_id or str(uuid.uuid4()))


def test_steps_are_at_most_half_the_visibility_timeout():
    far, near = NOW + timedelta(hours=18), NOW + timedelta(minutes=10)
    assert quota_wait.next_wake(NOW, far, 3600) == NOW + timedelta(seconds=1800)
    assert quota_wait.next_wake(NOW, near, 3600) == near
    assert quota_wait.next_wake(NOW, far, 60) == NOW + timedelta(seconds=30)


def test_the_visibility_timeout_comes_from_the_broker_transport_options(monkeypatch):
    monkeypatch.setitem(app.conf, "broker_transport_options", {"visibility_timeout": 120})
    assert quota_wait.visibility_timeout(app) == 120
    monkeypatch.setitem(app.conf, "broker_transport_options", {})
    assert quota_wait.visibility_timeout(app) == 3600


def test_the_wait_headers_are_read_from_a_worker_request_or_an_applied_one():
    future = (NOW + timedelta(hours=1)).isoformat()
    worker = SimpleNamespace(stalk_wait_until=future, stalk_waits=2, retries=5, headers=None)
    applied = SimpleNamespace(headers={"stalk_wait_until": future, "stalk_waits": "2"}, retries=5)
    for request in (worker, applied):
        assert quota_wait.waiting_until(request, now=NOW) == NOW + timedelta(hours=1)
        assert quota_wait.waits(request) == 2 and quota_wait.failed_attempts(request) == 3
    assert quota_wait.waiting_until(worker, now=NOW + timedelta(hours=2)) is None  # reached
    assert quota_wait.waiting_until(SimpleNamespace(headers=None, stalk_wait_until="junk")) is None


def test_a_run_whose_reset_has_come_is_charged_once_under_its_own_attempt_key(ledger_db):
    task_id = str(uuid.uuid4())
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    result = analyze(retries=4, headers={"stalk_wait_until": past, "stalk_waits": 4}, priority=True, task_id=task_id)
    assert result.get()["source"] == "api"
    with QuotaLedger(ledger_db) as ledger:
        assert ledger.status("youtube").used == YOUTUBE_UNITS
        assert [r.key for r in ledger.requests("youtube")] == [f"{task_id}#retry4"]


def test_waiting_steps_do_not_use_up_the_retries_for_transient_errors(ledger_db, monkeypatch):
    monkeypatch.setenv("STALK_DEMO_FAILURE_RATE", "1")
    waited = 5
    result = analyze(retries=waited, headers={"stalk_waits": waited})
    with pytest.raises(TransientError, match=f"attempt {waited + MAX_RETRIES + 1}"):
        result.get()


def test_an_eager_priority_call_on_a_spent_quota_falls_back_instead_of_waiting(ledger_db):
    analyze(priority=True).get()  # defines the quota
    with QuotaLedger(ledger_db) as ledger:
        ledger.reserve("youtube", ledger.status("youtube").remaining + 1000, "spend-all", priority=True)
    assert analyze(priority=True).get()["source"] == "cache"
