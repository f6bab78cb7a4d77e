"""Submit and revoke: validate a request (its problems), send one task, a chain or a group (validated
first: a 400 with the problems and nothing sent), group progress, revoke one task or many, and Stalk's
stored revokes. `wait` (seconds) waits for the outcome before answering."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from stalk.embedded.control import (
    Control,
    ControlError,
    Problem,
    RevokeEntry,
    check_task_id,
    signal_name,
)
from stalk.embedded.service.deps import the_control
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.service.responses import JSONResponse
from stalk.embedded.service.routes.control_support import acting, as_json

router = APIRouter(tags=["submit"])
MAX_WAIT = 3600.0
Wait = Query(None, gt=0, le=MAX_WAIT, description="seconds to wait for the outcome before answering")


class Outcome(BaseModel):
    """How a task (a chain: its last step; a group: every member) ended, or why that is not known."""

    state: str  # SUCCESS, FAILURE, REVOKED, ...; TIMEOUT: no result within `wait`
    result: Any = None
    error: str | None = None


class Sent(BaseModel):
    task_id: str
    name: str
    queue: str | None  # where it went: the queue given, else the app's route (None: the default)
    eta: datetime | None = None  # when it runs, for a countdown or an eta
    outcome: Outcome | None = None


class CanvasSent(BaseModel):
    id: str  # a chain: its last step's task id; a group: the group id
    task_ids: list[str]
    outcome: Outcome | None = None


class EntrySent(BaseModel):
    entry: str
    task_id: str
    outcome: Outcome | None = None


class ContextData(BaseModel):
    """SubmitContext as data: None means unknown (no worker answered, nothing declared)."""

    tasks: list[str] | None
    queues: list[str] | None
    visibility_timeout: int | None
    revoked: list[str]


class Canvas(BaseModel):
    steps: list[Any] = Field(description="submit requests, one per step")
    force: bool = False  # send despite warnings (never despite errors)


class Revoke(BaseModel):
    terminate: bool = False  # also kill the task if it is running
    signal: str | int = "SIGTERM"


class RevokeMany(Revoke):
    task_ids: list[str]
    force: bool = False  # revoke ids nothing knows too (otherwise 404 naming them, nothing revoked)


class Revoked(BaseModel):
    revoked: list[str]
    terminate: bool
    signal: str


class TaskIds(BaseModel):
    task_ids: list[str]


class BrokerUp(BaseModel):
    ok: bool = True


class Progress(BaseModel):
    done: int
    total: int


# -- submit -----------------------------------------------------------------------------------------

@router.get("/submit/context", response_model=ContextData,
            summary="What a submit is checked against: registered tasks, consumed queues, visibility timeout")
def context(control: Control = Depends(the_control)) -> ContextData:
    with acting():
        ctx = control.context()
    return ContextData(tasks=None if ctx.tasks is None else sorted(ctx.tasks),
                       queues=None if ctx.queues is None else sorted(ctx.queues),
                       visibility_timeout=ctx.visibility_timeout, revoked=sorted(ctx.revoked))


@router.post("/submit/validate", response_model=list[Problem],
             summary="Every problem with a request (errors never send; warnings only with force); nothing sent")
def validate(request: Any = Body(...), control: Control = Depends(the_control)) -> JSONResponse:
    return as_json(control.validate_submit(request), list[Problem])


@router.post("/submit", response_model=Sent, summary="Send one task by name (400 with the problems: nothing sent)")
def submit(request: Any = Body(...), force: bool = False, wait: float | None = Wait,
           control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        control.ensure_broker()  # 503 "broker ... unreachable" within seconds: nothing sent, nothing later
        checked = control.check(request, force)
        result = control.send(checked)
    queue = checked.options.get("queue") or _route(control, checked.name, checked.args, checked.kwargs)
    sent = Sent(task_id=str(result.id), name=checked.name, queue=queue, eta=_due(checked.options),
                outcome=outcome(result, wait) if wait else None)
    return as_json(sent)


@router.get("/submit/broker", response_model=BrokerUp,
            summary="Whether a send now would reach the broker (503 naming why not, within a few seconds)")
def broker_up(control: Control = Depends(the_control)) -> BrokerUp:
    with acting():
        control.ensure_broker()
    return BrokerUp()


def _route(control: Control, name: str, args: list, kwargs: dict) -> str | None:
    try:
        return control.view.route(name, args, kwargs)
    except Exception:
        return None


def _due(options: dict[str, Any]) -> datetime | None:
    eta = options.get("eta")
    if isinstance(eta, datetime):
        return eta.astimezone()
    countdown = options.get("countdown")
    if countdown is not None:
        return datetime.fromtimestamp(time.time() + float(countdown)).astimezone()
    return None


@router.post("/submit/chain", response_model=CanvasSent,
             summary="Run the steps one after another, each result passed as the next one's first argument")
def chain(body: Canvas, wait: float | None = Wait, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        control.ensure_broker()
        result = control.chain(body.steps, force=body.force)
    return as_json(CanvasSent(id=str(result.id), task_ids=[str(result.id)],
                              outcome=outcome(result, wait) if wait else None))


@router.post("/submit/group", response_model=CanvasSent, summary="Run the steps in parallel (a saved group)")
def group(body: Canvas, wait: float | None = Wait, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        control.ensure_broker()
        result = control.group(body.steps, force=body.force)
    return as_json(CanvasSent(id=str(result.id), task_ids=[str(r.id) for r in result.results],
                              outcome=outcome(result, wait) if wait else None))


@router.get("/groups/{group_id}/progress", response_model=Progress,
            summary="How many of a group's tasks have finished (any final state)")
def group_progress(group_id: str, control: Control = Depends(the_control)) -> Progress:
    try:
        done, total = control.group_progress(group_id)
    except ControlError as exc:
        raise ApiProblem(404, str(exc)) from None
    except Exception as exc:  # the result backend does not answer
        raise ApiProblem(503, f"group {group_id}: {type(exc).__name__}: {exc}") from None
    return Progress(done=done, total=total)


def outcome(result: Any, timeout: float) -> Outcome:
    """The outcome of a task, a chain (its last step) or a group (every member, the first failure named)."""
    try:
        value = result.get(timeout=timeout, propagate=False)
    except Exception as exc:  # timeout, no result backend
        return Outcome(state="TIMEOUT", error=f"sent {result.id}, but no result within {timeout:g} s: "
                                              f"{type(exc).__name__}: {exc}")
    members = getattr(result, "results", None)
    failed = [r for r in members or [result] if r.state != "SUCCESS"]
    if not failed:
        return Outcome(state="SUCCESS", result=value)
    first = failed[0]
    reason = first.result if members else value
    where = f"{first.id}: " if members else ""
    return Outcome(state=first.state, error=f"{where}{type(reason).__name__}: {reason}"
                   if reason is not None else first.state)


# -- revoke -----------------------------------------------------------------------------------------

@router.post("/tasks/{task_id:path}/revoke", response_model=Revoked,
             summary="Revoke one task (kept in Stalk's store: workers down now discard it when they start)")
def revoke(task_id: str, body: Revoke, control: Control = Depends(the_control)) -> Revoked:
    return revoke_many(RevokeMany(task_ids=[task_id], terminate=body.terminate, signal=body.signal, force=True),
                       control)


@router.post("/revoke", response_model=Revoked,
             summary="Revoke tasks; without force, ids nothing knows (most likely typos) are a 404, none revoked")
def revoke_many(body: RevokeMany, control: Control = Depends(the_control)) -> Revoked:
    with acting():
        ids = list(dict.fromkeys(check_task_id(t) for t in body.task_ids))
        sig = signal_name(body.signal)
        if not ids:
            raise ApiProblem(400, "revoke: no task id given")
        unknown = [] if body.force else control.unknown_task_ids(ids)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ApiProblem(404, f"not revoked: no task known has the id(s) {shown} (not in Stalk's task history or "
                              "revoke store, no result in the backend, in no queue, on no worker); force revokes "
                              "anyway", unknown=unknown)
    with acting():
        control.revoke_many(ids, terminate=body.terminate, signal=sig)
    return Revoked(revoked=ids, terminate=body.terminate, signal=sig)


@router.post("/revoke/unknown", response_model=list[str],
             summary="The ids nothing knows (not in history, revoke store, backend, queues or workers)")
def unknown_task_ids(body: TaskIds, control: Control = Depends(the_control)) -> list[str]:
    with acting():
        return control.unknown_task_ids(body.task_ids)


@router.get("/revokes", response_model=list[RevokeEntry], summary="Stalk's stored revokes (re-applied to every worker that starts)")
def revokes(control: Control = Depends(the_control)) -> list[RevokeEntry]:
    return control.revokes.entries() if control.revokes is not None else []


@router.get("/revokes/{task_id:path}", response_model=RevokeEntry, summary="When and how a task was revoked (404: it was not)")
def revoke_entry(task_id: str, control: Control = Depends(the_control)) -> RevokeEntry:
    entry = control.revoke_entry(task_id)
    if entry is None:
        raise ApiProblem(404, f"task {task_id}: not revoked through Stalk")
    return entry
