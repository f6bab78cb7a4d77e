"""What the Quota screen shows, read from the stack's ledger on a worker thread (one snapshot per poll).

The ledger is opened and closed per fetch: its connections are per thread, and each poll runs on a
new thread, so keeping it open would leak one connection per poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stalk.panel.quota_access import open_ledger

REQUESTS = 200
HISTORY_DAYS = 14


@dataclass
class QuotaData:
    available: bool = False  # a ledger exists on this stack
    statuses: list[Any] = field(default_factory=list)  # QuotaStatus of every quota, by name
    current: str | None = None
    requests: list[Any] = field(default_factory=list)  # RequestRow, newest first
    history: list[tuple[Any, int]] = field(default_factory=list)  # (date, used), oldest first
    problem: str | None = None

    def status(self) -> Any:
        return next((s for s in self.statuses if s.name == self.current), None)


def fetch_quota(stack: Any, wanted: str | None) -> QuotaData:
    data = QuotaData()
    try:
        ledger = open_ledger(stack)
    except Exception as exc:  # a corrupt or locked db is one line, not a crash
        data.problem = str(exc)
        return data
    if ledger is None:
        return data
    data.available = True
    try:
        data.statuses = sorted(_statuses(ledger), key=lambda s: s.name)
        names = [s.name for s in data.statuses]
        data.current = wanted if wanted in names else (names[0] if names else None)
        if data.current is not None:
            data.requests = list(ledger.requests(data.current, limit=REQUESTS))
            data.history = list(ledger.history(data.current, days=HISTORY_DAYS))
    except Exception as exc:  # QuotaError and sqlite errors arrive as one line
        data.problem = str(exc)
    finally:
        close = getattr(ledger, "close", None)
        if close is not None:
            close()
    return data


def _statuses(ledger: Any) -> list[Any]:
    if hasattr(ledger, "statuses"):
        return list(ledger.statuses())
    return [ledger.status(q.name) for q in ledger.quotas()]
