"""What the Flower-compatible routes share: the stack's parts (503 while it has none), the request's
arguments and body, blocking work off the event loop, Stalk's control errors as Flower's statuses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request

from stalk.embedded.control import BadInput, ControlError, SubmitError, check_task_id
from stalk.embedded.service.flower.args import Args
from stalk.embedded.service.flower.errors import FlowerError

if TYPE_CHECKING:
    from stalk.embedded.control import Control
    from stalk.embedded.events import EventStore

T = TypeVar("T")


def control_of(request: Request) -> Control:
    control = request.app.state.stack.control
    if control is None:
        raise FlowerError(503, "the stack has no control connection yet (starting): retry shortly")
    return control


def events_of(request: Request) -> EventStore:
    events = request.app.state.stack.events
    if events is None:
        raise FlowerError(503, "the stack has no event store yet (starting, or not in this mode): retry shortly")
    return events


async def arguments(request: Request) -> tuple[Args, bytes]:
    body = await request.body()
    return Args(request, body), body


LIMITS = {"work": 16, "wait": 64}  # threads at once: quick calls; /apply and /result?timeout waits


async def blocking(request: Request, fn: Callable[..., T], *args: Any, wait: bool = False) -> T:
    """`fn(*args)` in a thread of the Flower API's own (the stack API's routes share the event loop: a
    burst of /apply waits must never take the threads its panel and CLI need)."""
    limiters = request.app.state.limiters
    kind = "wait" if wait else "work"
    if kind not in limiters:  # made on the event loop, which anyio requires
        limiters[kind] = anyio.CapacityLimiter(LIMITS[kind])
    return await anyio.to_thread.run_sync(partial(fn, *args), limiter=limiters[kind])


@contextmanager
def failing(what: str, unknown: Callable[[BadInput], str | None] | None = None) -> Iterator[None]:
    """BadInput -> 400 (404 with the message `unknown(exc)` gives); a broker that does not answer -> 503;
    any other ControlError (a worker's error reply) -> 403 "`what`: reason", as Flower answers a failure."""
    try:
        yield
    except BadInput as exc:
        message = unknown(exc) if unknown is not None else None
        raise FlowerError(404 if message else 400, message or str(exc)) from None
    except SubmitError as exc:
        raise FlowerError(503 if "unreachable" in str(exc) else 400, str(exc)) from None
    except ControlError as exc:
        reason = str(exc)
        if "unreachable" in reason or "did not answer" in reason:
            raise FlowerError(503, f"{what}: {reason}") from None
        raise FlowerError(403, f"{what}: {reason}") from None


def task_id_of(value: str) -> str:
    """A task id from a path: Stalk's rule (check_task_id), and no path tricks (a `.` or `..` segment, bytes
    that are not UTF-8): 400."""
    if "\ufffd" in value or any(part in (".", "..") for part in value.split("/")):
        raise FlowerError(400, "not a task id: a path segment . or .., or bytes that are not UTF-8")
    with failing("task id"):
        return check_task_id(value)
