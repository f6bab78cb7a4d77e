"""The numbers a quota screen draws, read from the ledger in one snapshot."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta

from stalk.embedded.quota import clock
from stalk.embedded.quota.spec import QuotaSpec, QuotaStatus, RequestRow

HOURS = 24
RATE_WINDOW = 3600.0  # seconds: rate_per_hour is what was granted in the last hour


def build_status(conn: sqlite3.Connection, spec: QuotaSpec, now: datetime) -> QuotaStatus:
    zone, reset = spec.zone, spec.reset
    day = clock.quota_day(now, reset, zone)
    start = clock.day_start(day, reset, zone)
    row = conn.execute('SELECT used, "limit", reserve FROM usage WHERE quota = ? AND day = ?',
                       (spec.name, day.isoformat())).fetchone()
    used, limit, reserve = (row[0], row[1], row[2]) if row else (0, spec.daily_limit, spec.priority_reserve)
    reserved = max(0, min(reserve, limit - used))
    remaining = max(0, limit - reserve - used)
    rate = _rate(conn, spec.name, now)
    refused = _refused(conn, spec.name, day, remaining)
    return QuotaStatus(
        name=spec.name, limit=limit, used=used, reserved=reserved, remaining=remaining,
        resets_at=clock.resets_at(now, reset, zone), hourly=_hourly(conn, spec.name, day, start),
        rate_per_hour=rate,
        exhausted_at=refused[1] if refused and remaining > 0 else _exhausted_at(conn, spec, day, start, now,
                                                                                remaining, rate),
        day=day, priority_reserve=reserve, timezone=spec.timezone,
        denied=conn.execute("SELECT COUNT(*) FROM denials WHERE quota = ? AND day = ?",
                            (spec.name, day.isoformat())).fetchone()[0],
        pending=conn.execute("SELECT COUNT(*) FROM requests WHERE quota = ? AND state = 'reserved'",
                             (spec.name,)).fetchone()[0],
        starts_at=start.astimezone(zone), refused_units=refused[0] if refused else 0,
    )


def _hourly(conn: sqlite3.Connection, name: str, day: date, start: datetime) -> list[int]:
    """Units per hour since the quota-day began; the extra hour of a 25 h day counts in the last slot."""
    hours = [0] * HOURS
    rows = conn.execute(
        "SELECT CAST((created - ?) / 3600 AS INTEGER) AS hour, SUM(units) FROM requests"
        " WHERE quota = ? AND day = ? AND state != 'refunded' GROUP BY hour",
        (start.timestamp(), name, day.isoformat()))
    for hour, units in rows:
        hours[min(max(int(hour), 0), HOURS - 1)] += int(units)
    return hours


def _rate(conn: sqlite3.Connection, name: str, now: datetime) -> float:
    since = now.timestamp() - RATE_WINDOW
    units = conn.execute("SELECT COALESCE(SUM(units), 0) FROM requests WHERE quota = ? AND created >= ?"
                         " AND created <= ? AND state != 'refunded'",
                         (name, since, now.timestamp())).fetchone()[0]
    return float(units) * 3600.0 / RATE_WINDOW


def _refused(conn: sqlite3.Connection, name: str, day: date, remaining: int) -> tuple[int, datetime] | None:
    """(units, when) of today's last non-priority denial, if no non-priority call was granted after it
    and its cost still does not fit in what remains (a refund since may have made room)."""
    denial = conn.execute("SELECT units, at FROM denials WHERE quota = ? AND day = ? AND priority = 0"
                          " ORDER BY at DESC LIMIT 1", (name, day.isoformat())).fetchone()
    if denial is None or denial[0] <= remaining:
        return None
    granted = conn.execute("SELECT MAX(created) FROM requests WHERE quota = ? AND day = ? AND priority = 0"
                           " AND state != 'refunded'", (name, day.isoformat())).fetchone()[0]
    if granted is not None and granted > denial[1]:
        return None
    return int(denial[0]), datetime.fromtimestamp(denial[1], UTC)


def _exhausted_at(conn: sqlite3.Connection, spec: QuotaSpec, day: date, start: datetime, now: datetime,
                  remaining: int, rate: float) -> datetime | None:
    """When non-priority calls run out: the last grant if they already have, else a forecast at the
    current rate (None when that is after the reset, or nothing is being used)."""
    if remaining <= 0:
        last = conn.execute("SELECT MAX(created) FROM requests WHERE quota = ? AND day = ?",
                            (spec.name, day.isoformat())).fetchone()[0]
        at = datetime.fromtimestamp(last, UTC) if last is not None else start
        return at.astimezone(spec.zone)
    if rate <= 0:
        return None
    at = now + timedelta(hours=remaining / rate)
    resets = clock.resets_at(now, spec.reset, spec.zone)
    return at.astimezone(spec.zone) if at < resets else None


def history_rows(conn: sqlite3.Connection, spec: QuotaSpec, now: datetime, days: int) -> list[tuple[date, int]]:
    today = clock.quota_day(now, spec.reset, spec.zone)
    first = today - timedelta(days=max(1, days) - 1)
    used = dict(conn.execute("SELECT day, used FROM usage WHERE quota = ? AND day >= ? AND day <= ?",
                             (spec.name, first.isoformat(), today.isoformat())).fetchall())
    span = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    return [(d, int(used.get(d.isoformat(), 0))) for d in span]


def request_rows(conn: sqlite3.Connection, name: str, limit: int) -> list[RequestRow]:
    """Newest first; grants and denials each read through their time index, then merged."""
    limit = max(0, int(limit))
    grants = conn.execute(
        "SELECT key, units, priority, day, state, created, settled FROM requests WHERE quota = ?"
        " ORDER BY created DESC LIMIT ?", (name, limit)).fetchall()
    denials = conn.execute(
        "SELECT key, units, priority, day, at FROM denials WHERE quota = ? ORDER BY at DESC LIMIT ?",
        (name, limit)).fetchall()
    rows = [RequestRow(key=r["key"], quota=name, units=r["units"], priority=bool(r["priority"]),
                       day=date.fromisoformat(r["day"]), state=r["state"], at=_dt(r["created"]),
                       settled=_dt(r["settled"]) if r["settled"] is not None else None) for r in grants]
    rows += [RequestRow(key=r["key"], quota=name, units=r["units"], priority=bool(r["priority"]),
                        day=date.fromisoformat(r["day"]), state="denied", at=_dt(r["at"])) for r in denials]
    rows.sort(key=lambda r: r.at, reverse=True)
    return rows[:limit]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
