"""RemoteQuota: the quota ledger's reads over the API, returning what QuotaLedger returns.

The ledger's own refusals (no db, unknown quota, corrupt or locked file) arrive as QuotaError with the
stack's message; a stack that does not answer stays an ApiError."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from stalk.embedded.quota import QuotaError, QuotaSpec, QuotaStatus, RequestRow
from stalk.embedded.service.client import ApiError, StackClient
from stalk.embedded.service.codec import decode


class RemoteQuota:
    def __init__(self, client: StackClient) -> None:
        self.client = client

    def _get(self, path: str, **params: Any) -> Any:
        try:
            return self.client.get(path, **params)
        except ApiError as exc:
            if exc.status in (400, 404, 409, 422, 503):
                raise QuotaError(exc.message) from None
            raise

    def exists(self) -> bool:
        """The stack has a quota db (no db: no quota was ever defined on it)."""
        return bool(self.client.get("/quota")["exists"])

    def quotas(self) -> list[QuotaSpec]:
        return decode(list[QuotaSpec], self._get("/quotas"))

    def spec(self, name: str) -> QuotaSpec:
        return decode(QuotaSpec, self._get(f"/quotas/{name}"))

    def status(self, name: str) -> QuotaStatus:
        return _zoned(decode(QuotaStatus, self._get(f"/quotas/{name}/status")))

    def statuses(self) -> list[QuotaStatus]:
        statuses: list[QuotaStatus] = decode(list[QuotaStatus], self._get("/quota/status"))
        return [_zoned(s) for s in statuses]

    def requests(self, name: str, limit: int = 100, offset: int = 0) -> list[RequestRow]:
        page = self._get(f"/quotas/{name}/requests", limit=limit, offset=offset)
        rows: list[RequestRow] = decode(list[RequestRow], page["requests"])
        return [_utc_row(r) for r in rows]

    def history(self, name: str, days: int = 14) -> list[tuple[date, int]]:
        rows = self._get(f"/quotas/{name}/history", days=days)
        return [(date.fromisoformat(r["day"]), int(r["used"])) for r in rows]

    def close(self) -> None:
        """Nothing to close: the stack's client belongs to the RemoteStack."""


def _zoned(status: QuotaStatus) -> QuotaStatus:
    """Datetimes back in the quota's own timezone (JSON keeps only the offset), as the ledger gives them."""
    zone = ZoneInfo(status.timezone)
    return replace(status, resets_at=status.resets_at.astimezone(zone), starts_at=status.starts_at.astimezone(zone),
                   exhausted_at=status.exhausted_at.astimezone(zone) if status.exhausted_at else None)


def _utc_row(row: RequestRow) -> RequestRow:
    return replace(row, at=_utc(row.at), settled=_utc(row.settled) if row.settled else None)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
