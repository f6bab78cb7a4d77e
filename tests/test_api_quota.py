"""The quota ledger over the stack's API: real metered tasks charge an eager stack's ledger; the numbers,
the request log (paged), the history, and a missing / corrupt ledger are read back over the socket."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest
from celery import Celery

from stalk.embedded import Stack
from stalk.embedded.quota import (
    QuotaError,
    QuotaExhausted,
    QuotaLedger,
    QuotaStatus,
    forget_ledgers,
    metered,
)
from stalk.embedded.service import ApiError, StackClient
from stalk.embedded.service.remote_quota import RemoteQuota
from stalk.embedded.status_file import read_status
from tests.api_support import client_of
from tests.conftest import clean_env, make_config, stalk_cmd, wait_until

app = Celery("api_quota_test", set_as_current=False)
app.conf.stalk_quotas = {
    "maps": {"daily_limit": 30, "priority_reserve": 5, "timezone": "Europe/Paris", "costs": {"geocode": 4}},
    "sms": {"daily_limit": 1_000, "refund_failed": True},
}


@app.task(bind=True, name="t.geocode")
@metered("maps", units="geocode")
def geocode(self, address: str, priority: bool = False) -> str:
    return address.upper()


@app.task(bind=True, name="t.text")
@metered("sms", units=3)
def text(self, fail: bool = False) -> str:
    if fail:
        raise RuntimeError("the SMS gateway said no")
    return "sent"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An eager stack whose metered tasks ran in this process: 6 geocodes granted (24 units) and one
    denied, 4 texts sent and 1 failed (refunded)."""
    config = make_config(tmp_path_factory.mktemp("api-quota") / "data", broker={"mode": "eager"}, beat=False)
    running = Stack(config, app=app).start(wait=True, timeout=60)
    try:
        for i in range(7):
            try:
                geocode.apply((f"street {i}",), task_id=f"geo-{i}").get()
            except QuotaExhausted:
                pass
        for i in range(5):
            text.apply((i == 2,), task_id=f"sms-{i}")
        yield running
    finally:
        running.stop()
        forget_ledgers()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[StackClient]:
    with client_when_up(stack) as c:
        yield c


def client_when_up(stack: Stack) -> StackClient:
    """The stack's client once its status file names the API (a thread writes it just after start)."""
    wait_until(lambda: read_status(stack.paths.state) is not None, timeout=10, every=0.02)
    return client_of(stack)


def still(status: QuotaStatus) -> QuotaStatus:
    """Without the forecast (it moves with the clock between two reads)."""
    return replace(status, exhausted_at=None, rate_per_hour=0.0)


def test_statuses_over_the_api_are_the_ledgers(stack: Stack, client: StackClient) -> None:
    remote = RemoteQuota(client)
    with QuotaLedger(stack.paths.quota_db, create=False) as ledger:
        local = ledger.statuses()
        assert [still(s) for s in remote.statuses()] == [still(s) for s in local]
        assert still(remote.status("maps")) == still(ledger.status("maps"))
        assert remote.quotas() == ledger.quotas() and remote.spec("maps") == ledger.spec("maps")
    maps = remote.status("maps")
    assert (maps.used, maps.reserved, maps.remaining, maps.denied, maps.exhausted) == (24, 5, 1, 1, True)
    assert str(maps.resets_at.tzinfo) == "Europe/Paris" and maps.resets_at.hour == 0
    sms = client.get("/quotas/sms/status")
    assert (sms["used"], sms["remaining"], sms["limit"]) == (12, 988, 1_000)  # the failed text was refunded
    assert client.get("/quota") == {"path": str(stack.paths.quota_db), "exists": True}


def test_the_request_log_pages_newest_first(stack: Stack, client: StackClient) -> None:
    with QuotaLedger(stack.paths.quota_db, create=False) as ledger:
        everything = ledger.requests("maps", limit=100)
    assert len(everything) == 7 and everything[0].state == "denied" and everything[0].key == "geo-6"
    pages, offset = [], 0
    while True:
        page = client.get("/quotas/maps/requests", limit=3, offset=offset)
        pages.append(page)
        if not page["more"]:
            break
        offset += 3
    assert [len(p["requests"]) for p in pages] == [3, 3, 1]
    keys = [r["key"] for p in pages for r in p["requests"]]
    assert keys == [r.key for r in everything]
    assert RemoteQuota(client).requests("maps", limit=3, offset=3) == everything[3:6]
    states = {r.key: r.state for r in RemoteQuota(client).requests("sms", limit=10)}
    assert states == {"sms-0": "ok", "sms-1": "ok", "sms-2": "refunded", "sms-3": "ok", "sms-4": "ok"}


def test_history_per_day(stack: Stack, client: StackClient) -> None:
    days = client.get("/quotas/maps/history", days=3)
    assert [d["used"] for d in days] == [0, 0, 24]
    with QuotaLedger(stack.paths.quota_db, create=False) as ledger:
        assert RemoteQuota(client).history("maps", days=5) == ledger.history("maps", days=5)


def test_bad_requests_say_what_to_change(client: StackClient) -> None:
    with pytest.raises(ApiError) as unknown:
        client.get("/quotas/youtube/status")
    assert unknown.value.status == 404 and unknown.value.message == "unknown quota 'youtube'; defined: maps, sms"
    with pytest.raises(QuotaError, match="unknown quota 'youtube'"):
        RemoteQuota(client).history("youtube")
    with pytest.raises(ApiError) as bad:
        client.get("/quotas/maps/requests", limit=0)
    assert bad.value.status == 422 and "limit" in bad.value.message


def test_a_missing_then_corrupt_then_foreign_ledger(config_factory) -> None:
    """No quota declared: no db (404, what to do); garbage written there: 503 with the ledger's own
    wording, and the file is left as it was; another program's sqlite file: refused, not adopted."""
    bare = Celery("api_quota_bare", set_as_current=False)
    stack = Stack(config_factory(broker={"mode": "eager"}, beat=False), app=bare).start(wait=True, timeout=60)
    try:
        with client_when_up(stack) as client:
            remote = RemoteQuota(client)
            path = stack.paths.quota_db
            assert not remote.exists() and not path.exists()
            with pytest.raises(ApiError) as missing:
                client.get("/quota/status")
            assert missing.value.status == 404
            assert missing.value.message.startswith(f"no quota db at {path}: no quota is defined on this stack")
            path.write_bytes(b"this is not a database\n" * 100)
            before = path.read_bytes()
            with pytest.raises(ApiError) as corrupt:
                client.get("/quotas")
            assert corrupt.value.status == 503 and "is corrupt" in corrupt.value.message
            assert "left untouched" in corrupt.value.message and path.read_bytes() == before
            with pytest.raises(QuotaError, match="is corrupt"):
                remote.statuses()
            path.unlink()
            foreign = sqlite3.connect(path)
            foreign.execute("CREATE TABLE invoices (id INTEGER)")
            foreign.commit()
            foreign.close()
            with pytest.raises(QuotaError, match="not a Stalk quota ledger"):
                remote.statuses()
            tables = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")]
            assert tables == ["invoices"]
    finally:
        stack.stop()


def test_stalk_quota_reads_a_running_stack_over_its_api(stack: Stack, client: StackClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`stalk quota` on a data dir with a running stack asks the stack (the file is never opened here)."""
    from stalk.panel.cli import quota as quota_cli

    def no_file(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("stalk quota opened the db file while the stack runs")

    monkeypatch.setattr(quota_cli, "QuotaLedger", no_file)
    statuses = quota_cli.read_statuses(stack.paths.data_dir, stack.paths.quota_db)
    assert statuses is not None and [(s.name, s.used, s.remaining) for s in statuses] == [("maps", 24, 1),
                                                                                          ("sms", 12, 988)]


@pytest.mark.procs  # the real CLI, `python -m stalk quota`
def test_stalk_quota_table_from_a_running_stack(stack: Stack) -> None:
    out = subprocess.run(stalk_cmd("quota", "--data-dir", str(stack.paths.data_dir)), capture_output=True,
                         text=True, env=clean_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    maps = next(line for line in out.stdout.splitlines() if line.startswith("maps"))
    assert maps.split()[1:5] == ["24", "5", "1", "30"] and "Europe/Paris" in maps and "EXHAUSTED" in maps
