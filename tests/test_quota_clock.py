"""The quota day ends at the configured local time in the quota's timezone, across both DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from stalk.embedded.quota import QuotaExhausted, QuotaLedger, QuotaSpec
from stalk.embedded.quota.clock import day_start, quota_day, resets_at

LA = ZoneInfo("America/Los_Angeles")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path):
    with QuotaLedger(tmp_path / "quota.sqlite3") as ledger:
        ledger.define(QuotaSpec("youtube", daily_limit=10, timezone="America/Los_Angeles"))
        yield ledger


def spend_all(ledger: QuotaLedger, prefix: str) -> QuotaExhausted:
    for i in range(10):
        ledger.reserve("youtube", 1, f"{prefix}-{i}")
    with pytest.raises(QuotaExhausted) as info:
        ledger.reserve("youtube", 1, f"{prefix}-over")
    return info.value


@pytest.mark.parametrize(("day", "last_second", "reset", "hours"), [
    # spring forward (Sun 8 Mar 2026): midnight PST -> midnight PDT is a 23 h day
    (date(2026, 3, 8), utc(2026, 3, 9, 6, 59, 59), utc(2026, 3, 9, 7), 23),
    # fall back (Sun 1 Nov 2026): midnight PDT -> midnight PST is a 25 h day
    (date(2026, 11, 1), utc(2026, 11, 2, 7, 59, 59), utc(2026, 11, 2, 8), 25),
])
def test_reset_at_local_midnight_across_dst(ledger, day, last_second, reset, hours):
    start = day_start(day, time(0, 0), LA)
    assert reset - start == timedelta(hours=hours)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        exc = spend_all(ledger, f"{day}")
        assert exc.resets_at == reset
        assert exc.resets_at.tzinfo is not None and exc.resets_at.hour == 0  # local midnight
        status = ledger.status("youtube")
        assert status.resets_at == reset
        assert status.starts_at == start
        # (aware datetimes in the same zone subtract by wall clock: compare instants in UTC)
        assert status.resets_at.astimezone(UTC) - status.starts_at.astimezone(UTC) == timedelta(hours=hours)
    # 24 h after the start is not the reset: in the 23 h day it is already the next day, in the 25 h
    # day still the same one.
    with time_machine.travel(last_second, tick=False):
        with pytest.raises(QuotaExhausted):
            ledger.reserve("youtube", 1, f"{day}-last-second")
        assert ledger.status("youtube").used == 10
    with time_machine.travel(reset, tick=False):
        granted = ledger.reserve("youtube", 1, f"{day}-after-reset")
        assert granted.day == day + timedelta(days=1)
        status = ledger.status("youtube")
        assert (status.used, status.remaining, status.day) == (1, 9, day + timedelta(days=1))


def test_history_keeps_each_local_day(ledger):
    with time_machine.travel(utc(2026, 3, 8, 9), tick=False):
        spend_all(ledger, "a")
    with time_machine.travel(utc(2026, 3, 9, 7, 30), tick=False):
        ledger.reserve("youtube", 3, "b")
        assert ledger.history("youtube", days=3) == [
            (date(2026, 3, 7), 0), (date(2026, 3, 8), 10), (date(2026, 3, 9), 3)]


def test_reset_time_and_timezone_are_configurable():
    zone = ZoneInfo("Asia/Tokyo")
    reset = time(9, 30)
    assert quota_day(datetime(2026, 5, 2, 9, 29, tzinfo=zone), reset, zone) == date(2026, 5, 1)
    assert quota_day(datetime(2026, 5, 2, 9, 30, tzinfo=zone), reset, zone) == date(2026, 5, 2)
    assert resets_at(datetime(2026, 5, 2, 9, 29, tzinfo=zone), reset, zone) == datetime(2026, 5, 2, 9, 30,
                                                                                        tzinfo=zone)


def test_reset_in_a_dst_gap_is_when_the_clocks_jump():
    """02:30 does not exist on 8 Mar 2026 in Los Angeles: the day starts at the jump (02:00 PST)."""
    reset = time(2, 30)
    start = day_start(date(2026, 3, 8), reset, LA)
    assert start == utc(2026, 3, 8, 10)
    assert quota_day(start - timedelta(seconds=1), reset, LA) == date(2026, 3, 7)
    assert quota_day(start, reset, LA) == date(2026, 3, 8)


def test_reset_in_a_repeated_hour_is_its_first_occurrence_and_days_never_go_back():
    """01:30 happens twice on 1 Nov 2026: the day starts at the first; the second stays in it."""
    reset = time(1, 30)
    start = day_start(date(2026, 11, 1), reset, LA)
    assert start == utc(2026, 11, 1, 8, 30)  # 01:30 PDT
    for minutes in (0, 30, 60, 90):  # through the repeated hour, 01:30 PST = 09:30 UTC
        assert quota_day(start + timedelta(minutes=minutes), reset, LA) == date(2026, 11, 1)
    assert resets_at(start, reset, LA) - start == timedelta(hours=25)


def test_hourly_slots_count_from_the_start_of_the_quota_day(ledger):
    with time_machine.travel(utc(2026, 11, 1, 7, 10), tick=False):  # 00:10 PDT
        ledger.reserve("youtube", 2, "h0")
    with time_machine.travel(utc(2026, 11, 2, 7, 30), tick=False):  # hour 24 of the 25 h day
        ledger.reserve("youtube", 1, "h24")
        status = ledger.status("youtube")
        assert len(status.hourly) == 24
        assert status.hourly[0] == 2 and status.hourly[23] == 1 and sum(status.hourly) == 3
