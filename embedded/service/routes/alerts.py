"""/alerts: the [[alerts]] rules with their states, and the newest firings and resolutions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from stalk.embedded.service.deps import the_stack
from stalk.embedded.stack import Stack

router = APIRouter(tags=["alerts"])


class RuleInfo(BaseModel):
    name: str
    kind: str  # task_failures, queue_depth, worker_offline or quota
    description: str  # one human line, e.g. "demo.* failed >= 3 times in 10 min"
    state: Literal["ok", "firing", "unknown"]
    since: float | None  # epoch of the last state change
    value: float | None  # the last measured value
    threshold: float
    message: str | None  # the last measurement, or why there is none (the state is then kept)


class AlertEventInfo(BaseModel):
    id: int
    rule: str
    state: Literal["firing", "resolved"]
    at: float
    message: str


class AlertsInfo(BaseModel):
    rules: list[RuleInfo]  # empty: no [[alerts]] in stalk.toml
    recent: list[AlertEventInfo]  # newest first


@router.get("/alerts", response_model=AlertsInfo,
            summary="The [[alerts]] rules and their states, then recent firings and resolutions (newest first)")
def alerts(limit: int = Query(100, ge=0, le=10_000), stack: Stack = Depends(the_stack)) -> AlertsInfo:
    if stack.alerts is None:
        return AlertsInfo(rules=[], recent=[])
    return AlertsInfo.model_validate(stack.alerts.status(limit))
