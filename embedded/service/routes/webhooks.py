"""/webhooks: the configured webhooks (never their secrets), their outbox's deliveries, retry now."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from stalk.embedded.service.deps import the_stack
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.stack import Stack
from stalk.embedded.webhooks import Delivery, Webhooks

router = APIRouter(tags=["webhooks"])


class Counts(BaseModel):
    delivered: int = 0
    pending: int = 0  # not tried yet
    failing: int = 0  # tried, not acknowledged: retried with back-off


class HookInfo(BaseModel):
    url: str
    tasks: list[str]
    states: list[str]
    signed: bool  # a secret is set: X-Stalk-Signature: sha256=<HMAC of the body>
    timeout: float
    backoff_max: float
    counts: Counts


class WebhooksInfo(BaseModel):
    hooks: list[HookInfo]
    outbox: str | None  # the outbox file; None: no webhook configured


class DeliveryInfo(BaseModel):
    id: int
    hook: str
    task_id: str
    name: str | None
    state: str
    status: str  # delivered, failing or pending
    created: float
    attempts: int
    next_at: float
    last_try: float | None
    last_status: int | None
    last_error: str | None
    acked_at: float | None


def info_of(row: Delivery) -> DeliveryInfo:
    return DeliveryInfo(id=row.id, hook=row.hook, task_id=row.task_id, name=row.name, state=row.state,
                        status=row.status, created=row.created, attempts=row.attempts, next_at=row.next_at,
                        last_try=row.last_try, last_status=row.last_status, last_error=row.last_error,
                        acked_at=row.acked_at)


def _webhooks(stack: Stack) -> Webhooks:
    if stack.webhooks is None:
        raise ApiProblem(404, "no webhooks configured: add a [[webhooks]] table (url = ...) to stalk.toml")
    return stack.webhooks


@router.get("/webhooks", response_model=WebhooksInfo, summary="The configured webhooks and their delivery counts")
def webhooks(stack: Stack = Depends(the_stack)) -> WebhooksInfo:
    hooks = stack.webhooks
    counts = hooks.outbox.counts() if hooks is not None else {}
    return WebhooksInfo(
        hooks=[HookInfo(url=h.url, tasks=list(h.tasks), states=list(h.states), signed=bool(h.secret),
                        timeout=h.timeout, backoff_max=h.backoff_max, counts=Counts(**counts.get(h.url, {})))
               for h in stack.config.webhooks],
        outbox=str(hooks.outbox.path) if hooks is not None else None)


@router.get("/webhooks/deliveries", response_model=list[DeliveryInfo],
            summary="Recent deliveries, newest first (failures: only those tried and not acknowledged)")
def deliveries(limit: int = Query(100, ge=1, le=10_000), failures: bool = False, hook: str | None = None,
               stack: Stack = Depends(the_stack)) -> list[DeliveryInfo]:
    if stack.webhooks is None:
        return []
    return [info_of(row) for row in stack.webhooks.outbox.recent(limit, failures=failures, hook=hook)]


@router.post("/webhooks/deliveries/{delivery_id}/retry", response_model=DeliveryInfo,
             summary="Send a pending or failing delivery now (its hook's back-off is reset)")
def retry(delivery_id: int, stack: Stack = Depends(the_stack)) -> DeliveryInfo:
    row = _webhooks(stack).retry(delivery_id)
    if row is None:
        raise ApiProblem(404, f"no delivery {delivery_id} in the outbox (see GET /api/v1/webhooks/deliveries)")
    if row.acked_at is not None:
        raise ApiProblem(409, f"delivery {delivery_id} was acknowledged already: it is never sent again")
    return info_of(row)
