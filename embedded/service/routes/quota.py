"""/quota and /quotas: the stack's quota ledger, read-only (metered tasks write it, never the API).

The stack process owns the ledger: one QuotaLedger, opened when its file exists and opened again when
the file is replaced. A missing ledger is a 404, a corrupt or locked one a 503, both saying what to do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from stalk.embedded.quota import QuotaError, QuotaLedger, QuotaSpec, QuotaStatus, RequestRow
from stalk.embedded.service.deps import server_state, the_stack
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.stack import Stack

router = APIRouter(tags=["quota"])
T = TypeVar("T")
MAX_REQUESTS = 5_000
MAX_OFFSET = 100_000


class LedgerInfo(BaseModel):
    path: str
    exists: bool


class RequestPage(BaseModel):
    offset: int
    limit: int
    more: bool  # rows after this page
    requests: list[RequestRow]


class DayUse(BaseModel):
    day: date
    used: int


class Ledgers:
    """The server's one ledger on the stack's quota db (re-opened when the file is another one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ledger: QuotaLedger | None = None
        self._inode: tuple[int, int] | None = None

    def get(self) -> QuotaLedger:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._ledger, self._inode = None, None
            raise ApiProblem(404, f"no quota db at {self.path}: no quota is defined on this stack (declare "
                                  "app.conf.stalk_quotas and restart it, or run a metered task)") from None
        inode = (stat.st_dev, stat.st_ino)
        with self._lock:
            if self._ledger is None or self._inode != inode:
                # the old one is not closed here: a request may still be reading through it (its
                # connections close when the last reference goes)
                self._ledger, self._inode = None, None
                try:
                    self._ledger = QuotaLedger(self.path, create=False)
                except QuotaError as exc:
                    raise ApiProblem(503, str(exc)) from None
                self._inode = inode
            return self._ledger



def the_ledgers(stack: Stack = Depends(the_stack), state: Any = Depends(server_state)) -> Ledgers:
    ledgers = getattr(state, "quota_ledgers", None)
    if ledgers is None or ledgers.path != stack.paths.quota_db:
        ledgers = Ledgers(stack.paths.quota_db)
        state.quota_ledgers = ledgers
    return ledgers


def _read(ledgers: Ledgers, fn: Callable[[QuotaLedger], T]) -> T:
    """`fn(ledger)`; an unknown quota is a 404, an unreadable ledger a 503 (its own message)."""
    ledger = ledgers.get()
    try:
        return fn(ledger)
    except QuotaError as exc:
        message = str(exc)
        raise ApiProblem(404 if message.startswith("unknown quota") else 503, message) from None


@router.get("/quota", response_model=LedgerInfo, summary="Where the stack's quota ledger is, and if it exists")
def ledger_info(stack: Stack = Depends(the_stack)) -> LedgerInfo:
    path = stack.paths.quota_db
    return LedgerInfo(path=str(path), exists=path.exists())


@router.get("/quota/status", response_model=list[QuotaStatus], summary="Today's numbers of every quota, by name")
def all_statuses(ledgers: Ledgers = Depends(the_ledgers)) -> list[QuotaStatus]:
    return _read(ledgers, lambda ledger: ledger.statuses())


@router.get("/quotas", response_model=list[QuotaSpec], summary="Every quota's definition, by name")
def list_quotas(ledgers: Ledgers = Depends(the_ledgers)) -> list[QuotaSpec]:
    return _read(ledgers, lambda ledger: ledger.quotas())


@router.get("/quotas/{name}", response_model=QuotaSpec, summary="One quota's definition")
def one_quota(name: str, ledgers: Ledgers = Depends(the_ledgers)) -> QuotaSpec:
    return _read(ledgers, lambda ledger: ledger.spec(name))


@router.get("/quotas/{name}/status", response_model=QuotaStatus,
            summary="Today's used / reserve / remaining, hourly use, rate, forecast and reset of one quota")
def one_status(name: str, ledgers: Ledgers = Depends(the_ledgers)) -> QuotaStatus:
    return _read(ledgers, lambda ledger: ledger.status(name))


@router.get("/quotas/{name}/requests", response_model=RequestPage,
            summary="The request log, newest first: grants with their settle state, and denials")
def requests(name: str, limit: int = Query(200, ge=1, le=MAX_REQUESTS),
             offset: int = Query(0, ge=0, le=MAX_OFFSET), ledgers: Ledgers = Depends(the_ledgers)) -> RequestPage:
    rows = _read(ledgers, lambda ledger: ledger.requests(name, limit=offset + limit + 1))
    page = rows[offset:offset + limit]
    return RequestPage(offset=offset, limit=limit, more=len(rows) > offset + limit, requests=page)


@router.get("/quotas/{name}/history", response_model=list[DayUse],
            summary="Units used per quota-day, the last `days` days up to today, oldest first")
def history(name: str, days: int = Query(14, ge=1, le=366), ledgers: Ledgers = Depends(the_ledgers)) -> list[DayUse]:
    rows = _read(ledgers, lambda ledger: ledger.history(name, days=days))
    return [DayUse(day=day, used=used) for day, used in rows]
