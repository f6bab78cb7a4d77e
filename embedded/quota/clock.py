"""The quota's day: it starts at the reset time in the quota's own timezone (23 h or 25 h across DST)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def day_start(day: date, reset: time, zone: tzinfo) -> datetime:
    """The instant quota-day `day` begins: `reset` local time on `day`.

    An ambiguous time (DST fall-back) means its first occurrence; a time that does not exist
    (spring-forward gap) means the moment the clocks jump, when local time first passes `reset`."""
    wall = datetime.combine(day, reset)
    first = wall.replace(tzinfo=zone, fold=0)
    if _local(first.astimezone(UTC), zone) == wall:
        return first.astimezone(UTC)
    # In a gap: fold=1 reads it with the offset after the jump (an instant before the jump), fold=0
    # with the offset before it (an instant after). Find the first second whose local time is >= wall.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(first.timestamp())
    lo, hi = min(lo, hi), max(lo, hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if _local(datetime.fromtimestamp(mid, UTC), zone) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


def quota_day(at: datetime, reset: time, zone: tzinfo) -> date:
    """The quota-day that instant `at` belongs to."""
    local_date = at.astimezone(zone).date()
    return local_date if at >= day_start(local_date, reset, zone) else local_date - timedelta(days=1)


def resets_at(at: datetime, reset: time, zone: tzinfo) -> datetime:
    """When the quota-day holding `at` ends, as an aware datetime in the quota's timezone."""
    end = day_start(quota_day(at, reset, zone) + timedelta(days=1), reset, zone)
    return end.astimezone(zone)


def _local(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)
