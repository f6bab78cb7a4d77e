"""Properties of the quota day in any timezone and reset time: every instant is in exactly one day,
days never go back, and each lasts 22-26 h (DST changes included)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from stalk.embedded.quota.clock import day_start, quota_day, resets_at

ZONES = ["America/Los_Angeles", "Europe/London", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Kolkata", "Pacific/Chatham", "America/Havana", "UTC"]

instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))
resets = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=400, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), reset=resets)
@example(at=datetime(2022, 9, 30, 16, 0, tzinfo=UTC), zone="Australia/Lord_Howe", reset=time(2, 0))  # 30 min jump
def test_every_instant_is_in_one_day(at, zone, reset):
    tz = ZoneInfo(zone)
    day = quota_day(at, reset, tz)
    start, end = day_start(day, reset, tz), resets_at(at, reset, tz)
    assert start <= at < end
    assert timedelta(hours=22) <= end - start <= timedelta(hours=26)
    assert quota_day(end, reset, tz) == day + timedelta(days=1)
    # One second before, as an instant: arithmetic on `end` itself would be on its wall clock, and
    # 02:30 - 1 s on the morning Lord Howe's clocks jump 02:00 -> 02:30 is a time that never was.
    assert quota_day(end.astimezone(UTC) - timedelta(seconds=1), reset, tz) == day


@settings(max_examples=200, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), reset=resets, step=st.integers(1, 7200))
def test_days_never_go_back(at, zone, reset, step):
    tz = ZoneInfo(zone)
    assert quota_day(at + timedelta(seconds=step), reset, tz) >= quota_day(at, reset, tz)
