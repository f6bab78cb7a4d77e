"""Flower's worker routes: the workers as their inspect replies describe them, and remote control
(shutdown, pool restart/grow/shrink/autoscale, consumers, a task type's time and rate limits).
A worker that does not answer a ping is a 404, as a worker Flower never saw; a worker's error reply is a
403 naming it, as in Flower."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from stalk.embedded.control import BadInput, ControlError, check_count, check_name
from stalk.embedded.control.inputs import shown
from stalk.embedded.service.flower.common import arguments, blocking, control_of, failing
from stalk.embedded.service.flower.errors import FlowerError, answer
from stalk.embedded.service.flower.shapes import INSPECT_METHODS

if TYPE_CHECKING:
    from stalk.embedded.control import Control

router = APIRouter()
CACHE_SECONDS = 10.0  # /api/workers asks the workers again when its answers are older (or refresh=1)
INSPECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 2.0


class WorkerCache:
    """Flower's inspector cache: {hostname: {stats, active_queues, ..., timestamp}}."""

    def __init__(self) -> None:
        self.workers: dict[str, dict[str, Any]] = {}
        self.updated = 0.0
        self.lock = threading.Lock()

    def stale(self, workername: str | None) -> bool:
        return time.monotonic() - self.updated > CACHE_SECONDS or bool(workername and workername not in self.workers)

    def update(self, control: Control, workername: str | None) -> None:
        with ThreadPoolExecutor(len(INSPECT_METHODS)) as pool:
            replies = list(pool.map(lambda kind: control.inspect(kind, workername, INSPECT_TIMEOUT), INSPECT_METHODS))
        now = time.time()
        with self.lock:
            if workername is None:
                self.workers = {}
            for method, answers in zip(INSPECT_METHODS, replies, strict=True):
                for host, reply in (answers or {}).items():
                    if reply is not None:
                        self.workers.setdefault(host, {})[method] = reply
                        self.workers[host]["timestamp"] = now
            self.updated = time.monotonic()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.workers)


def cache_of(request: Request) -> WorkerCache:
    return request.app.state.worker_cache


@router.get("/api/workers")
async def list_workers(request: Request) -> Response:
    args, _ = await arguments(request)
    refresh, status = args.boolean("refresh", False), args.boolean("status", False)
    workername = args.text("workername", None) or None
    if status:
        events = request.app.state.stack.events
        if events is not None:
            return answer({w.hostname: w.online for w in events.workers()})
    cache = cache_of(request)
    if refresh or cache.stale(workername):
        control = control_of(request)
        try:
            await blocking(request, cache.update, control, workername)
        except ControlError as exc:
            raise FlowerError(503, f"Failed to update workers: {exc}") from None
    workers = cache.snapshot()
    if status:
        return answer(dict.fromkeys(workers, True))
    if workername:
        if workername not in workers:
            raise FlowerError(404, f"Unknown worker '{shown(workername)}'")
        return answer({workername: workers[workername]})
    return answer(workers)


def _known_worker(control: Control, workername: str) -> str:
    """The worker when it answers a ping: 400 for a name no worker can have, else 404."""
    with failing("worker"):
        host = check_name("worker", workername)
    with failing("worker", lambda _exc: f"Unknown worker '{shown(workername)}'"):
        return control.require_worker(host)


def _ok(replies: list, host: str | None, default: str) -> str:
    """The `ok` text of `host`'s reply (any worker's when None)."""
    for reply in replies or ():
        for name, said in reply.items():
            if (host is None or name == host) and isinstance(said, dict) and "ok" in said:
                return str(said["ok"])
    return default


async def _worker_command(request: Request, workername: str, failure: str, act: Any) -> Any:
    control = control_of(request)
    host = await blocking(request, _known_worker, control, workername)
    with failing(failure):
        return await blocking(request, act, control, host)


@router.post("/api/worker/shutdown/{workername:path}")
async def shutdown(request: Request, workername: str) -> Response:
    await arguments(request)
    await _worker_command(request, workername, "Failed to shut down", lambda c, h: c.shutdown(h))
    return answer({"message": "Shutting down!"})


@router.post("/api/worker/pool/restart/{workername:path}")
async def pool_restart(request: Request, workername: str) -> Response:
    await arguments(request)
    await _worker_command(request, workername, f"Failed to restart the '{workername}' pool", _restart)
    return answer({"message": f"Restarting '{workername}' worker's pool"})


def _restart(control: Control, host: str) -> list:
    return _broadcast(control, "pool_restart", host, {"reload": False})


def _broadcast(control: Control, command: str, host: str, arguments: dict[str, Any]) -> list:
    """A command Stalk's Control has no method for, sent as Flower sends it; a worker's error -> 403."""
    try:
        replies = control.app.control.broadcast(command, arguments=arguments, destination=[host], reply=True,
                                                timeout=REPLY_TIMEOUT, limit=1) or []
    except Exception as exc:
        raise ControlError(f"broker unreachable: {exc}") from None
    if not replies:
        raise ControlError(f"worker {host} did not answer")
    for reply in replies:
        said = reply.get(host)
        if isinstance(said, dict) and "error" in said:
            raise ControlError(str(said["error"]))
    return replies


@router.post("/api/worker/pool/grow/{workername:path}")
async def pool_grow(request: Request, workername: str) -> Response:
    args, _ = await arguments(request)
    with failing("pool grow"):
        n = check_count("n", args.integer("n", 1))
    await _worker_command(request, workername, f"Failed to grow '{workername}' worker's pool",
                          lambda c, h: c.pool_grow(h, n))
    return answer({"message": f"Growing '{workername}' worker's pool by {n}"})


@router.post("/api/worker/pool/shrink/{workername:path}")
async def pool_shrink(request: Request, workername: str) -> Response:
    args, _ = await arguments(request)
    with failing("pool shrink"):
        n = check_count("n", args.integer("n", 1))
    await _worker_command(request, workername, f"Failed to shrink '{workername}' worker's pool",
                          lambda c, h: c.pool_shrink(h, n))
    return answer({"message": f"Shrinking '{workername}' worker's pool by {n}"})


@router.post("/api/worker/pool/autoscale/{workername:path}")
async def autoscale(request: Request, workername: str) -> Response:
    args, _ = await arguments(request)
    low, high = args.integer("min"), args.integer("max")
    with failing("autoscale"):
        check_count("min", low, minimum=0)
        if check_count("max", high) < low:
            raise BadInput(f"autoscale: max ({high}) must be >= min ({low})")
    await _worker_command(request, workername, f"Failed to autoscale '{workername}' worker",
                          lambda c, h: c.autoscale(h, high, low))
    return answer({"message": f"Autoscaling '{workername}' worker (min={low}, max={high})"})


@router.post("/api/worker/queue/add-consumer/{workername:path}")
async def add_consumer(request: Request, workername: str) -> Response:
    return await _consumer(request, workername, "add_consumer", "Failed to add '{q}' consumer to '{w}' worker")


@router.post("/api/worker/queue/cancel-consumer/{workername:path}")
async def cancel_consumer(request: Request, workername: str) -> Response:
    return await _consumer(request, workername, "cancel_consumer",
                           "Failed to cancel '{q}' consumer from '{w}' worker")


async def _consumer(request: Request, workername: str, command: str, failure: str) -> Response:
    args, _ = await arguments(request)
    with failing(command):
        queue = check_name("queue", args.text("queue"))
    replies = await _worker_command(request, workername, failure.format(q=queue, w=workername),
                                    lambda c, h: _broadcast(c, command, h, {"queue": queue}))
    return answer({"message": _ok(replies, workername, f"{command} {queue}")})


# -- task types -----------------------------------------------------------------------------------

def _known_task(control: Control, name: str) -> None:
    with failing("task"):
        check_name("task", name)
    with failing("task", lambda _exc: f"Unknown task '{shown(name)}'"):
        control.require_task(name)


async def _destination(request: Request, control: Control, workername: str | None) -> str | None:
    if workername is None:
        return None
    return await blocking(request, _known_worker, control, workername)


@router.post("/api/task/timeout/{name:path}")
async def time_limit(request: Request, name: str) -> Response:
    args, _ = await arguments(request)
    soft, hard = args.number("soft", None), args.number("hard", None)
    workername = args.text("workername", None) or None
    control = control_of(request)
    await blocking(request, _known_task, control, name)
    host = await _destination(request, control, workername)
    with failing("Failed to set timeouts"):
        replies = await blocking(request, lambda: control.time_limit(name, soft, hard, host))
    return answer({"message": _ok(replies, host, "time limits set successfully")})


@router.post("/api/task/rate-limit/{name:path}")
async def rate_limit(request: Request, name: str) -> Response:
    args, _ = await arguments(request)
    rate = args.text("ratelimit")
    workername = args.text("workername", None) or None
    control = control_of(request)
    await blocking(request, _known_task, control, name)
    host = await _destination(request, control, workername)
    with failing("Failed to set rate limit"):
        replies = await blocking(request, lambda: control.rate_limit(name, rate, host))
    return answer({"message": _ok(replies, host, "new rate limit set successfully")})
