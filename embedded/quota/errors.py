"""The two ways a quota call fails: the ledger itself is unusable, or the quota is spent for today."""

from __future__ import annotations

from datetime import datetime


class QuotaError(Exception):
    """The ledger cannot be used (corrupt or locked db, bad spec, unknown quota): one clear message.

    Never raised for an exhausted quota, so `except QuotaError` does not swallow exhaustion."""


class QuotaExhausted(Exception):  # noqa: N818 - the contract's name
    """A reservation would exceed today's limit (or dip into the priority reserve for a normal call).

    `resets_at` (aware datetime) is when the quota's day ends: a priority task can
    `raise self.retry(eta=exc.resets_at, exc=exc)`; a normal one can fall back (cache, skip)."""

    def __init__(self, name: str, resets_at: datetime | str, units: int = 0, priority: bool = False) -> None:
        # args stay JSON-friendly so Celery can store this exception and rebuild it on the client side.
        at = resets_at if isinstance(resets_at, datetime) else datetime.fromisoformat(str(resets_at))
        super().__init__(name, at.isoformat(), units, priority)
        self.name = name
        self.resets_at = at
        self.units = units
        self.priority = priority

    def __str__(self) -> str:
        kind = "priority call" if self.priority else "call (priority reserve excluded)"
        return (f"quota {self.name!r} exhausted: a {self.units}-unit {kind} would exceed today's limit; "
                f"it resets at {self.resets_at.isoformat()}")
