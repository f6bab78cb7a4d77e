"""Flower's send routes (POST /api/task/apply/, async-apply/, send-task/{name}) answered inside the guard,
before FastAPI's exception middleware, routing and dependency solving, which cost more CPU a request than
the send itself. The same steps as the routes in tasks.py (the guard's checks first, then the body, Stalk's
validation, the send, the answer), so the same statuses and bodies; only the path there is shorter.

The sends run on the Publisher's threads instead of one anyio thread hop each: a thread takes every send
waiting (a batch), sends them one after another through Control.send as before (publish journal, task-sent
events), reads their states in one round trip, then wakes the event loop once for the whole batch. A
request is answered only once its own send returned: nothing is acknowledged before it is on the broker."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.result import AsyncResult
from starlette.requests import Request
from starlette.responses import Response

from stalk.embedded.service.flower.common import arguments, blocking, control_of
from stalk.embedded.service.flower.errors import FlowerError, answer, text
from stalk.embedded.service.flower.tasks import _send, _sent, _wait, submit_request

if TYPE_CHECKING:
    from stalk.embedded.service.guard import ASGIApp, Receive, Scope, Send

log = logging.getLogger("stalk.flower")
ROUTES = {"/api/task/async-apply/": "async-apply", "/api/task/send-task/": "send-task", "/api/task/apply/": "apply"}
THREADS = 2  # publisher threads: one sends while the other waits on the broker (1: -30% requests/s)
BATCH = 64  # sends a thread takes at once

Job = tuple[Callable[[], Any], asyncio.Future, bool]  # (send, its request's future, answer as _sent)
Outcome = tuple[Any, BaseException | None]


class Publisher:
    """Runs send jobs on THREADS threads of its own, started on first use; `run(fn)` awaits fn's result."""

    def __init__(self, threads: int = THREADS) -> None:
        self.size = threads
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.stopped = False

    async def run(self, fn: Callable[[], Any], answer: bool = False) -> Any:
        """fn() on a publisher thread; with `answer`, fn returns an AsyncResult and this its _sent answer
        (the states of a batch read in one round trip)."""
        future = asyncio.get_running_loop().create_future()
        self._start()
        self.jobs.put((fn, future, answer))
        return await future

    def _start(self) -> None:
        if len(self.threads) == self.size and all(t.is_alive() for t in self.threads):
            return
        with self.lock:
            if self.stopped:
                raise FlowerError(503, "the Flower-compatible API is stopping")
            self.threads = [t for t in self.threads if t.is_alive()]
            while len(self.threads) < self.size:
                thread = threading.Thread(target=self._loop, name="stalk-flower-send", daemon=True)
                thread.start()
                self.threads.append(thread)

    def _loop(self) -> None:
        while True:
            batch = [self.jobs.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            jobs = [job for job in batch if job is not None]
            if jobs:
                try:
                    outcomes = _answered(jobs, [_outcome(fn) for fn, _, _ in jobs])
                except BaseException as exc:  # this thread ends (the next request starts another): answer all
                    _settle_all(jobs, [(None, FlowerError(500, f"send interrupted: {exc!r}"))] * len(jobs))
                    raise
                _settle_all(jobs, outcomes)
            if len(jobs) < len(batch):  # stop(): the jobs taken with it are done; the next thread stops too
                self.jobs.put(None)
                return

    def stop(self, timeout: float = 5.0) -> None:
        with self.lock:
            self.stopped = True
            self.jobs.put(None)
            threads, self.threads = self.threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))


def _outcome(fn: Callable[[], Any]) -> Outcome:
    try:
        return fn(), None
    except Exception as exc:
        return None, exc


def _answered(jobs: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
    """The sends that want an answer get _sent's, their states read together."""
    wanted = [i for i, ((_, _, wants), (_, exc)) in enumerate(zip(jobs, outcomes, strict=True)) if wants and exc is None]
    for i, sent in zip(wanted, sent_answers([outcomes[i][0] for i in wanted]), strict=True):
        outcomes[i] = sent
    return outcomes


def sent_answers(results: list[AsyncResult]) -> list[Outcome]:
    """_sent of each result; on a redis result backend the states of all of them in one MGET (a task not
    stored yet is PENDING, as AsyncResult.state reads it); one by one if that MGET fails (_sent's retries
    and its 503)."""
    backend = results[0].backend if results else None
    if len(results) > 1 and isinstance(backend, RedisBackend) and all(r.backend is backend for r in results):
        try:
            values = backend.mget([backend.get_key_for_task(r.id) for r in results])
            return [({"task-id": r.id, "state": backend.decode_result(v)["status"] if v else states.PENDING}, None)
                    for r, v in zip(results, values, strict=True)]
        except Exception:  # noqa: S110 - read again one by one below, as _sent does
            pass
    return [_outcome(partial(_sent, r)) for r in results]


def _settle_all(jobs: list[Job], outcomes: list[Outcome]) -> None:
    """One wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
    for (_, future, _), (value, exc) in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, value, exc))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _settle(settled: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, value, exc in settled:
        if future.done():  # the request was cancelled meanwhile
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class FastSends:
    """ASGI app inside FlowerGuard: POSTs to ROUTES answered here, anything else passed on to `app`, the
    FastAPI app with the other routes (whose state the sends use too)."""

    def __init__(self, app: Any) -> None:
        self.app: ASGIApp = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        kind, name = route
        scope["app"] = self.app  # as Starlette sets it: request.app.state is the routes' state
        request = Request(scope, receive)
        try:
            response = await _handle(request, kind, name)
        except FlowerError as exc:
            response = text(exc.message, exc.status)
        except Exception as exc:  # as errors.install's handler answers a route's crash
            log.exception("Flower-compatible API route failed")
            response = text(f"internal error: {type(exc).__name__}: {exc}", 500)
        await response(scope, receive, send)  # type: ignore[arg-type]


def _route(scope: Scope) -> tuple[str, str] | None:
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    path: str = scope["path"]
    for prefix, kind in ROUTES.items():
        if path.startswith(prefix):
            name = path[len(prefix):]
            return None if "\n" in name else (kind, name)  # as FastAPI's {name:path} (.*) matches
    return None


async def _handle(request: Request, kind: str, name: str) -> Response:
    _, body = await arguments(request)
    wanted = submit_request(name, body)
    control = control_of(request)
    state = request.app.state
    contexts = state.submit_contexts
    if kind != "apply":
        return answer(await state.publisher.run(lambda: _send(control, wanted, contexts), answer=True))
    outcome = await state.publisher.run(lambda: _send(control, wanted, contexts))
    return answer(await blocking(request, _wait, outcome, wait=True))
