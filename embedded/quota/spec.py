"""What a quota is (QuotaSpec) and what the ledger reports about it (QuotaStatus, Reservation, RequestRow)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stalk.embedded.quota.errors import QuotaError

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuotaSpec:
    """A named daily quota, e.g. YouTube Data API: 10,000 units/day, resets at midnight Pacific,
    1,000 units kept for priority calls, `search.list` costs 100 units."""

    name: str
    daily_limit: int
    priority_reserve: int = 0
    timezone: str = "UTC"
    reset_time: str = "00:00"  # HH:MM local time in `timezone`
    costs: dict[str, int] = field(default_factory=dict)  # per-call unit costs, by call name
    refund_failed: bool = False  # give a failed call's units back (only when the API did not charge it)

    def __post_init__(self) -> None:
        where = f"quota {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise QuotaError(f"quota name {self.name!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
        if not _is_int(self.daily_limit) or self.daily_limit < 0:
            raise QuotaError(f"{where}: daily_limit must be a whole number >= 0, got {self.daily_limit!r}")
        if not _is_int(self.priority_reserve) or not 0 <= self.priority_reserve <= self.daily_limit:
            raise QuotaError(f"{where}: priority_reserve must be between 0 and daily_limit "
                             f"({self.daily_limit}), got {self.priority_reserve!r}")
        if not isinstance(self.reset_time, str) or not _TIME.match(self.reset_time):
            raise QuotaError(f"{where}: reset_time must be HH:MM (24 h), got {self.reset_time!r}")
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise QuotaError(f"{where}: unknown timezone {self.timezone!r} "
                             "(use an IANA name such as America/Los_Angeles)") from None
        if not isinstance(self.costs, dict) or not all(
                isinstance(k, str) and _is_int(v) and v >= 0 for k, v in self.costs.items()):
            raise QuotaError(f"{where}: costs must map call names to whole numbers >= 0, got {self.costs!r}")
        object.__setattr__(self, "refund_failed", bool(self.refund_failed))

    @classmethod
    def of(cls, name: str, settings: QuotaSpec | dict[str, Any]) -> QuotaSpec:
        """From an app's `stalk_quotas` entry: a QuotaSpec or a dict of its keyword arguments."""
        if isinstance(settings, QuotaSpec):
            return settings
        if not isinstance(settings, dict):
            raise QuotaError(f"stalk_quotas[{name!r}] must be a dict of QuotaSpec settings, got {settings!r}")
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise QuotaError(f"stalk_quotas[{name!r}]: unknown setting(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(known))}")
        return cls(name=name, **settings)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def reset(self) -> time:
        return time.fromisoformat(self.reset_time)

    def cost(self, units: int | str) -> int:
        """Units for one call: a number, or the name of a call in `costs`."""
        if isinstance(units, str):
            if units not in self.costs:
                raise QuotaError(f"quota {self.name!r}: no cost for call {units!r}; "
                                 f"known: {', '.join(sorted(self.costs)) or 'none'}")
            return self.costs[units]
        if not _is_int(units) or units < 0:
            raise QuotaError(f"quota {self.name!r}: units must be a whole number >= 0, got {units!r}")
        return int(units)

    def costs_json(self) -> str:
        return json.dumps(self.costs, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Units granted to one key (a task id). `charged` is False when the key already held them."""

    key: str
    quota: str
    units: int
    priority: bool
    day: date
    state: str  # reserved | ok | failed | refunded
    created: datetime
    settled: datetime | None = None
    charged: bool = True


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One line of a quota's request log: a grant (reserved/ok/failed/refunded) or a denial."""

    key: str | None
    quota: str
    units: int
    priority: bool
    day: date
    state: str  # reserved | ok | failed | refunded | denied
    at: datetime
    settled: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """Today's numbers for one quota: used + reserved + remaining == limit. Datetimes are aware, in the
    quota's timezone (note: two of them subtract by wall clock in Python; use .astimezone(UTC) first)."""

    name: str
    limit: int
    used: int
    reserved: int  # the priority reserve still unused
    remaining: int  # still usable by non-priority calls
    resets_at: datetime  # aware, in the quota's timezone
    hourly: list[int]  # units granted in each hour of today's quota-day (a 25 h day folds into the last)
    rate_per_hour: float  # units granted in the last 60 minutes
    exhausted_at: datetime | None  # forecast at the current rate (non-priority calls); None: not before reset
    day: date
    priority_reserve: int
    timezone: str
    denied: int  # denied calls today
    pending: int  # reservations not settled yet (running, or lost with their worker)
    starts_at: datetime  # when today's quota-day began (resets_at - starts_at is 23 h/25 h across DST)
    refused_units: int = 0  # the last non-priority call was refused and its cost still does not fit

    @property
    def exhausted(self) -> bool:
        """Non-priority callers are out: nothing remains, or the last such call was refused and its cost
        still does not fit (24 units left do not help calls of 51)."""
        return self.remaining <= 0 or self.refused_units > self.remaining


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
