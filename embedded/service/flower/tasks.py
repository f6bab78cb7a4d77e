"""Flower's task routes: list, info, types, queue lengths, apply / async-apply / send-task, result, abort,
revoke. Sends go through Stalk's submit validation (an error is a 400, or 404 for a task no worker
registers, and nothing is sent); warnings (a queue nobody consumes yet...) do not stop them, as Flower
stops none."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.backends.base import DisabledBackend
from celery.contrib.abortable import AbortableAsyncResult
from celery.result import AsyncResult
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from stalk.embedded.control import SubmitContext, SubmitError, signal_name
from stalk.embedded.control.inputs import shown
from stalk.embedded.events import TaskRecord
from stalk.embedded.events.queries import SORT_KEYS
from stalk.embedded.service.flower.args import Args
from stalk.embedded.service.flower.common import (
    arguments,
    blocking,
    control_of,
    events_of,
    failing,
    task_id_of,
)
from stalk.embedded.service.flower.errors import FlowerError, answer, text
from stalk.embedded.service.flower.shapes import safe_result, task_dict, task_info

if TYPE_CHECKING:
    from stalk.embedded.control import Control
    from stalk.embedded.events import EventStore

router = APIRouter()
OPTIONS = ("queue", "priority", "countdown", "eta", "expires", "retry", "retry_policy", "task_id")
FLOWER_SORT = ("name", "state", "received", "started")
DATE_FORMAT = "%Y-%m-%d %H:%M"
CONTEXT_SECONDS = 2.0
ROUTES_KEPT = 256  # task names whose route a context keeps
MAX_WAIT = 3600.0  # seconds: /apply and /result?timeout wait at most this long


@router.get("/healthcheck")
def healthcheck() -> Response:
    return text("OK", 200)


# -- reading --------------------------------------------------------------------------------------

@router.get("/api/tasks")
async def list_tasks(request: Request) -> Response:
    args, _ = await arguments(request)
    events = events_of(request)
    chosen = _task_query(args)
    return answer(await blocking(request, _tasks_page, events, chosen))


def _task_query(args: Args) -> dict[str, Any]:
    limit = args.integer("limit", None)
    if limit is not None and limit < 0:
        raise FlowerError(400, f"Invalid argument limit: {limit} (must not be negative)")
    sort_by = args.text("sort_by", None) or None
    if sort_by is not None and sort_by.removeprefix("-") not in FLOWER_SORT:
        raise FlowerError(400, f"Invalid argument sort_by '{shown(sort_by, 40)}': one of {', '.join(FLOWER_SORT)}, "
                               "- in front for descending")
    return {"limit": limit or None, "offset": max(args.integer("offset", 0), 0), "sort_by": sort_by,
            "worker": _all(args.text("workername", None)), "name": _all(args.text("taskname", None)),
            "state": _all(args.text("state", None)), "search": args.text("search", None) or None,
            "start": _date(args, "received_start"), "end": _date(args, "received_end")}


def _all(value: str | None) -> str | None:
    return None if value in (None, "", "All") else value


def _date(args: Args, name: str) -> float | None:
    value = args.text(name, None)
    if not value:
        return None
    try:
        return time.mktime(datetime.strptime(value, DATE_FORMAT).timetuple())
    except (ValueError, OverflowError):
        raise FlowerError(400, f"Invalid argument {name} '{shown(value, 40)}': expected {DATE_FORMAT}") from None


def _tasks_page(events: EventStore, q: dict[str, Any]) -> dict[str, Any]:
    """Flower's order: newest first by default; by `sort_by` ascending (descending with a leading -)."""
    key = (q["sort_by"] or "received").removeprefix("-")
    reverse = q["sort_by"] is None or q["sort_by"].startswith("-")
    exact = q["worker"] or q["name"] or q["start"] is not None or q["end"] is not None or key not in SORT_KEYS
    wanted = q["offset"] + q["limit"] if q["limit"] else None
    found = events.query(state=q["state"], name=q["name"], worker=q["worker"], search=q["search"],
                         sort_key=key if key in SORT_KEYS else "received", reverse=reverse,
                         limit=None if exact else wanted)
    if exact:
        found = [r for r in found if _exactly(r, q)]
        if key not in SORT_KEYS:
            found.sort(key=lambda r: r.started or 0.0, reverse=reverse)
        found = found[:wanted]
    return {r.task_id: task_dict(r) for r in found[q["offset"]:]}


def _exactly(rec: TaskRecord, q: dict[str, Any]) -> bool:
    """Flower's filters are exact names (the store's are substrings) and received bounds."""
    received = rec.received or 0.0
    return ((not q["worker"] or rec.worker == q["worker"]) and (not q["name"] or rec.name == q["name"])
            and (q["start"] is None or received > q["start"]) and (q["end"] is None or received < q["end"]))


@router.get("/api/task/types")
async def task_types(request: Request) -> Response:
    events = events_of(request)
    names = await blocking(request, lambda: sorted({r.name for r in events.query(limit=None) if r.name}))
    return answer({"task-types": names})


@router.get("/api/queues/length")
async def queue_lengths(request: Request) -> Response:
    control = control_of(request)
    with failing("queue lengths"):
        depths = await blocking(request, control.queue_depths)
    return answer({"active_queues": [{"name": name, "messages": n} for name, n in sorted(depths.items())]})


@router.get("/api/task/info/{task_id:path}")
async def info(request: Request, task_id: str) -> Response:
    events = events_of(request)
    rec = events.get(task_id)
    if rec is None:
        raise FlowerError(404, f"Unknown task '{shown(task_id)}'")
    children = await blocking(request, lambda: [r.task_id for r in events.children_of(task_id)])
    return answer(task_info(rec, children))


@router.get("/api/task/result/{task_id:path}")
async def result(request: Request, task_id: str) -> Response:
    args, _ = await arguments(request)
    timeout = args.number("timeout", None)
    if timeout is not None and not 0 <= timeout <= MAX_WAIT:
        raise FlowerError(400, f"Invalid argument timeout: {timeout:g} (0 to {MAX_WAIT:g} seconds)")
    task_id = task_id_of(task_id)
    outcome = _result_of(control_of(request), task_id)
    return answer(await blocking(request, _read_result, outcome, timeout, wait=bool(timeout)))


def _result_of(control: Control, task_id: str) -> AsyncResult:
    outcome = AsyncResult(task_id, app=control.app)
    if isinstance(outcome.backend, DisabledBackend):
        raise FlowerError(503, "result backend is not configured")
    return outcome


def _read_result(outcome: AsyncResult, timeout: float | None) -> dict[str, Any]:
    try:
        if timeout:
            await_ready(outcome, timeout)
        response: dict[str, Any] = {"task-id": outcome.id, "state": outcome.state}
        if outcome.ready():
            _add_result(response, outcome)
    except FlowerError:
        raise
    except Exception as exc:  # the result backend does not answer
        raise FlowerError(503, f"result backend: {type(exc).__name__}: {exc}") from None
    return response


def await_ready(outcome: AsyncResult, timeout: float) -> None:
    """Until `outcome` is ready or `timeout` s passed, by reading its state (a plain read of the backend)
    rather than AsyncResult.get: the Redis backend's get listens on one pub/sub connection per app, which
    many threads waiting at once break ("Retry limit exceeded ... result store"), for the stack's own
    callers too."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not outcome.ready():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.2)


def _add_result(response: dict[str, Any], outcome: AsyncResult) -> None:
    response["result"] = safe_result(outcome.result)
    if outcome.state == "FAILURE":
        response["traceback"] = outcome.traceback


# -- sending --------------------------------------------------------------------------------------

def submit_request(name: str, body: bytes) -> dict[str, Any]:
    """Flower's body (JSON whatever the content type says: args, kwargs, apply_async options) as Stalk's
    submit request."""
    try:
        options = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise FlowerError(400, f"invalid JSON body: {exc}" if not isinstance(exc, RecursionError)
                          else "invalid JSON body: nested too deeply") from None
    if not isinstance(options, dict):
        raise FlowerError(400, "invalid options")
    args = options.pop("args", [])
    kwargs = options.pop("kwargs", {})
    if not isinstance(args, list):
        raise FlowerError(400, "args must be an array")
    if not isinstance(kwargs, dict):
        raise FlowerError(400, "kwargs must be an object")
    unknown = sorted(str(k) for k in options if k not in OPTIONS)
    if unknown:
        raise FlowerError(400, f"Invalid option(s) {shown(', '.join(unknown))}: Stalk sends {', '.join(OPTIONS)}")
    return {"name": name, "args": args, "kwargs": kwargs, **options}


class Contexts:
    """What sends are checked against (Control.context: registered tasks, consumed queues...), asked by one
    thread at a time and kept CONTEXT_SECONDS: many clients sending at once when it goes stale would each
    start the same broadcasts, which then wait on one another."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.context: SubmitContext | None = None
        self.at = 0.0

    def get(self, control: Control) -> SubmitContext:
        with self.lock:
            if self.context is None or time.monotonic() - self.at > CONTEXT_SECONDS:
                self.context = _routes_kept(control.context())
                self.at = time.monotonic()
            return self.context


def _routes_kept(ctx: SubmitContext) -> SubmitContext:
    """The context with each task name's route looked up once (Celery's router, per send otherwise): a
    route depends on the name alone here (Control._route), and the context is made anew every
    CONTEXT_SECONDS, so a reloaded app's routes count from the next one."""
    if ctx.route is None:
        return ctx
    return dataclasses.replace(ctx, route=functools.lru_cache(maxsize=ROUTES_KEPT)(ctx.route))


def _send(control: Control, request: dict[str, Any], contexts: Contexts) -> AsyncResult:
    try:
        checked = control.check(request, force=True, ctx=contexts.get(control))
    except SubmitError as exc:
        if any(p.field == "name" and "not registered" in p.message for p in exc.problems):
            raise FlowerError(404, f"Unknown task '{shown(request['name'])}'") from None
        raise FlowerError(400, str(exc)) from None
    with failing("send"):
        return control.send(checked)


def _sent(outcome: AsyncResult) -> dict[str, Any]:
    response: dict[str, Any] = {"task-id": outcome.id}
    if not isinstance(outcome.backend, DisabledBackend):
        try:
            response["state"] = outcome.state
        except Exception as exc:
            raise FlowerError(503, f"sent {outcome.id}; result backend: {type(exc).__name__}: {exc}") from None
    return response


async def _post_send(request: Request, name: str, then: Any = None) -> Any:
    """Validate and send (then `then(result)`) in one thread hop."""
    _, body = await arguments(request)
    wanted = submit_request(name, body)
    control = control_of(request)
    contexts = request.app.state.submit_contexts
    return await blocking(request, lambda: (then or (lambda sent: sent))(_send(control, wanted, contexts)))


# The Flower port (app.FlowerApp) answers these three POSTs in fast.py, before FastAPI's routing, with the
# same steps; these routes stay for the FastAPI app alone and give a send path's other methods their 405.
@router.post("/api/task/async-apply/{name:path}")
async def async_apply(request: Request, name: str) -> Response:
    return answer(await _post_send(request, name, _sent))


@router.post("/api/task/send-task/{name:path}")
async def send_task(request: Request, name: str) -> Response:
    return answer(await _post_send(request, name, _sent))


@router.post("/api/task/apply/{name:path}")
async def apply(request: Request, name: str) -> Response:
    outcome = await _post_send(request, name)
    return answer(await blocking(request, _wait, outcome, wait=True))


def _wait(outcome: AsyncResult) -> dict[str, Any]:
    response: dict[str, Any] = {"task-id": outcome.id}
    try:
        await_ready(outcome, MAX_WAIT)
    except Exception:  # no result backend: answer what is known
        pass
    if outcome.ready():
        _add_result(response, outcome)
    if not isinstance(outcome.backend, DisabledBackend):
        response["state"] = outcome.state
    return response


@router.post("/api/task/abort/{task_id:path}")
async def abort(request: Request, task_id: str) -> Response:
    await arguments(request)
    task_id = task_id_of(task_id)
    control = control_of(request)
    outcome = AbortableAsyncResult(task_id, app=control.app)
    if isinstance(outcome.backend, DisabledBackend):
        raise FlowerError(503, "result backend is not configured")
    try:
        await blocking(request, outcome.abort)
    except Exception as exc:
        raise FlowerError(503, f"abort: result backend: {type(exc).__name__}: {exc}") from None
    return answer({"message": f"Aborted '{task_id}'"})


@router.post("/api/task/revoke/{task_id:path}")
async def revoke(request: Request, task_id: str) -> Response:
    args, _ = await arguments(request)
    terminate = args.boolean("terminate", False)
    task_id = task_id_of(task_id)
    with failing("revoke"):
        sig = signal_name(args.text("signal", "SIGTERM"))
    control = control_of(request)
    with failing("revoke"):
        await blocking(request, lambda: control.revoke(task_id, terminate=terminate, signal=sig))
    return answer({"message": f"Revoked '{task_id}'"})
