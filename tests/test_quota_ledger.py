"""QuotaLedger: reservations, the priority reserve, idempotent keys, refunds, and the screen's numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from stalk.embedded.quota import QuotaError, QuotaExhausted, QuotaLedger, QuotaSpec

YOUTUBE = QuotaSpec("youtube", daily_limit=10_000, priority_reserve=1_000, timezone="America/Los_Angeles",
                    costs={"videos.list": 1, "search.list": 100})
NOON = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)  # 12:00 PDT


@pytest.fixture
def ledger(tmp_path):
    with QuotaLedger(tmp_path / "quota.sqlite3") as ledger:
        ledger.define(YOUTUBE)
        yield ledger


def test_define_and_list(ledger):
    assert ledger.quotas() == [YOUTUBE]
    assert ledger.spec("youtube").costs == {"videos.list": 1, "search.list": 100}
    with pytest.raises(QuotaError, match="unknown quota 'nope'; defined: youtube"):
        ledger.reserve("nope", 1, "k")


def test_costs_by_call_name(ledger):
    assert ledger.reserve("youtube", "search.list", "a").units == 100
    assert ledger.reserve("youtube", "videos.list", "b").units == 1
    assert ledger.status("youtube").used == 101
    with pytest.raises(QuotaError, match="no cost for call 'captions.insert'"):
        ledger.reserve("youtube", "captions.insert", "c")


def test_same_key_is_charged_once(ledger):
    first = ledger.reserve("youtube", 100, "task-1")
    again = ledger.reserve("youtube", 100, "task-1")
    assert first.charged and not again.charged
    assert (again.key, again.units, again.state) == ("task-1", 100, "reserved")
    ledger.settle("task-1", ok=True)
    ledger.settle("task-1", ok=True)  # a redelivered task settles again: no change
    assert ledger.reserve("youtube", 100, "task-1").state == "ok"
    status = ledger.status("youtube")
    assert status.used == 100
    assert [r.key for r in ledger.requests("youtube")] == ["task-1"]


def test_the_reserve_holds_against_normal_calls(ledger):
    for i in range(90):
        ledger.reserve("youtube", 100, f"n{i}")
    status = ledger.status("youtube")
    assert (status.used, status.reserved, status.remaining) == (9_000, 1_000, 0)
    assert status.exhausted
    with pytest.raises(QuotaExhausted) as info:
        ledger.reserve("youtube", 1, "normal")
    assert not info.value.priority and info.value.name == "youtube"
    for i in range(10):
        ledger.reserve("youtube", 100, f"p{i}", priority=True)
    with pytest.raises(QuotaExhausted):
        ledger.reserve("youtube", 1, "p-over", priority=True)
    status = ledger.status("youtube")
    assert (status.used, status.reserved, status.remaining, status.denied) == (10_000, 0, 0, 2)


def test_priority_calls_use_the_shared_pool_first(ledger):
    ledger.reserve("youtube", 500, "p", priority=True)
    status = ledger.status("youtube")
    assert (status.used, status.reserved, status.remaining) == (500, 1_000, 8_500)


def test_failed_calls_keep_their_units_unless_the_spec_refunds(tmp_path):
    with QuotaLedger(tmp_path / "q.sqlite3") as ledger:
        ledger.define(QuotaSpec("keep", daily_limit=10))
        ledger.define(QuotaSpec("refund", daily_limit=10, refund_failed=True))
        ledger.reserve("keep", 4, "k")
        ledger.reserve("refund", 4, "r")
        assert ledger.settle("k", ok=False).state == "failed"
        assert ledger.settle("r", ok=False).state == "refunded"
        ledger.settle("r", ok=False)  # twice: refunded once
        assert ledger.status("keep").used == 4
        assert ledger.status("refund").used == 0
        # a refunded key that runs again makes the call again: charged again, once
        assert ledger.reserve("refund", 4, "r").charged
        assert ledger.reserve("refund", 4, "r").charged is False
        assert ledger.status("refund").used == 4


def test_settle_unknown_key_is_a_clear_error(ledger):
    with pytest.raises(QuotaError, match="no reservation with key 'ghost'"):
        ledger.settle("ghost", ok=True)


def test_a_call_that_can_never_fit_is_an_error_not_exhaustion(ledger):
    with pytest.raises(QuotaError, match="can never fit"):
        ledger.reserve("youtube", 9_500, "huge")
    ledger.reserve("youtube", 9_500, "huge-priority", priority=True)


def test_redefining_never_drops_below_what_is_used(ledger):
    ledger.reserve("youtube", 5_000, "a")
    ledger.define(QuotaSpec("youtube", daily_limit=3_000, timezone="America/Los_Angeles"))
    status = ledger.status("youtube")
    assert (status.limit, status.used, status.remaining) == (5_000, 5_000, 0)
    with pytest.raises(QuotaExhausted):
        ledger.reserve("youtube", 1, "b")


def test_rate_forecast_and_log(ledger):
    with time_machine.travel(NOON - timedelta(minutes=30), tick=False):
        ledger.reserve("youtube", 1_000, "a")
    with time_machine.travel(NOON, tick=False):
        ledger.reserve("youtube", 1_000, "b")
        status = ledger.status("youtube")
        assert status.rate_per_hour == 2_000
        # 7,000 left for normal calls at 2,000/h: out in 3.5 h, before the midnight reset
        assert status.exhausted_at == NOON + timedelta(hours=3.5)
        assert status.hourly[11] == 1_000 and status.hourly[12] == 1_000
    with time_machine.travel(NOON + timedelta(seconds=1), tick=False):
        with pytest.raises(QuotaExhausted):
            ledger.reserve("youtube", 8_000, "c")
        log = ledger.requests("youtube")
        assert [(r.key, r.state) for r in log] == [("c", "denied"), ("b", "reserved"), ("a", "reserved")]
        assert ledger.requests("youtube", limit=1)[0].key == "c"
    with time_machine.travel(NOON + timedelta(hours=2), tick=False):
        status = ledger.status("youtube")  # the last normal call (8,000 units) was refused and still does
        assert status.exhausted and status.exhausted_at == NOON + timedelta(seconds=1)  # not fit in 7,000
        ledger.reserve("youtube", 10, "d")
        assert ledger.status("youtube").exhausted_at is None  # a call fits again; nothing else last hour


def test_forecast_after_the_reset_is_none(ledger):
    with time_machine.travel(NOON, tick=False):
        ledger.reserve("youtube", 100, "slow")
        assert ledger.status("youtube").exhausted_at is None  # 8,900 at 100/h is past midnight


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"daily_limit": -1}, "daily_limit must be"),
    ({"daily_limit": 10, "priority_reserve": 11}, "priority_reserve must be between 0 and daily_limit"),
    ({"daily_limit": 10, "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"daily_limit": 10, "reset_time": "24:00"}, "reset_time must be HH:MM"),
    ({"daily_limit": 10, "costs": {"x": -1}}, "costs must map"),
])
def test_bad_specs_are_one_clear_line(kwargs, message):
    with pytest.raises(QuotaError, match=message):
        QuotaSpec("q", **kwargs)


def test_spec_from_app_settings():
    assert QuotaSpec.of("y", {"daily_limit": 5}) == QuotaSpec("y", 5)
    with pytest.raises(QuotaError, match="unknown setting"):
        QuotaSpec.of("y", {"daily_limit": 5, "limit": 3})


def test_exhausted_survives_a_json_round_trip():
    from celery.utils.serialization import create_exception_cls  # noqa: F401  (Celery rebuilds by args)

    exc = QuotaExhausted("youtube", datetime(2026, 3, 9, 7, tzinfo=UTC), 100, True)
    rebuilt = QuotaExhausted(*exc.args)
    assert (rebuilt.name, rebuilt.resets_at, rebuilt.units, rebuilt.priority) == (
        "youtube", datetime(2026, 3, 9, 7, tzinfo=UTC), 100, True)
    assert "resets at 2026-03-09T07:00:00+00:00" in str(exc)


def test_connections_of_ended_threads_are_closed(ledger):
    import threading

    for _ in range(20):
        t = threading.Thread(target=ledger.status, args=("youtube",))
        t.start()
        t.join()
    ledger.status("youtube")
    assert len(ledger._all) <= 2


def test_a_key_belongs_to_one_quota(ledger):
    ledger.define(QuotaSpec("llm", daily_limit=100))
    ledger.reserve("youtube", 1, "task-9")
    with pytest.raises(QuotaError, match="already holds a reservation on quota 'youtube'"):
        ledger.reserve("llm", 1, "task-9")
    assert ledger.status("llm").used == 0


def test_a_refused_call_that_still_does_not_fit_means_exhausted(tmp_path):
    """24 normal units left and calls of 51: exhausted for those callers since the refusal, never a
    forecast of a time that has passed (issue: 'runs out in 9.6 s' for minutes, exhausted false)."""
    from stalk.panel.widgets.quota_summary import forecast

    api = QuotaSpec("api", daily_limit=1_100, priority_reserve=100, refund_failed=True)
    with QuotaLedger(tmp_path / "quota.sqlite3") as ledger:
        ledger.define(api)
        with time_machine.travel(NOON, tick=False):
            for i in range(19):
                ledger.reserve("api", 51, f"n{i}")
            status = ledger.status("api")
            assert (status.remaining, status.exhausted) == (31, False)
        refused_at = NOON + timedelta(seconds=30)
        with time_machine.travel(refused_at, tick=False):
            ledger.reserve("api", 7, "small-1")
            with pytest.raises(QuotaExhausted):
                ledger.reserve("api", 51, "refused")
        with time_machine.travel(NOON + timedelta(minutes=10), tick=False):
            status = ledger.status("api")
            assert status.remaining == 24 and status.refused_units == 51 and status.exhausted
            assert status.exhausted_at == refused_at
            text = forecast(status, (NOON + timedelta(minutes=10)).timestamp())
            assert text.startswith("[$error]exhausted since") and "9m30s ago" in text
            assert "24 units left, too few for a 51-unit call" in text
            ledger.reserve("api", 20, "small-2")  # a call that fits is still granted,
            assert not ledger.status("api").exhausted  # and the quota is not out for such calls
            with pytest.raises(QuotaExhausted):
                ledger.reserve("api", 51, "refused-2")
            assert ledger.status("api").exhausted
            ledger.reserve("api", 51, "n0")  # n0 already holds its reservation: no new grant
            ledger.settle("n0", ok=False)  # a refund makes room for a 51-unit call again
            status = ledger.status("api")
            assert (status.remaining, status.exhausted) == (55, False)


def test_the_forecast_never_shows_a_time_that_has_passed():
    from types import SimpleNamespace

    from stalk.panel.widgets.quota_summary import forecast

    now = NOON.timestamp()
    past = SimpleNamespace(rate_per_hour=600.0, remaining=10, reserved=0, exhausted=False, refused_units=0,
                           exhausted_at=NOON - timedelta(seconds=5))
    assert "runs out" not in forecast(past, now)


def test_a_call_waiting_for_the_write_lock_is_stamped_when_it_gets_it(ledger):
    """Grants and denials carry the time they were decided, under the write lock: a call that read the
    clock before waiting for another worker's transaction looked older than it, and a refusal older than
    the grant decided before it made the quota read 'not exhausted' (stats._refused)."""
    import sqlite3
    import threading
    import time

    other = sqlite3.connect(ledger.path, timeout=10)
    other.execute("BEGIN IMMEDIATE")  # another worker's reservation, holding the write lock
    done: dict[str, object] = {}
    waiting = threading.Thread(target=lambda: done.update(grant=ledger.reserve("youtube", 1, "waited")))
    waiting.start()
    time.sleep(0.3)
    released = time.time()
    other.execute("COMMIT")
    other.close()
    waiting.join(10)
    grant = done["grant"]
    assert grant.created.timestamp() >= released  # type: ignore[attr-defined]
