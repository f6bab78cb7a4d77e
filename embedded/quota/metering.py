"""Metering Celery tasks: a decorator and a Task base class that charge the ledger per task id."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task, current_task

from stalk.embedded.quota.app_ledger import ledger_for_app
from stalk.embedded.quota.errors import QuotaError, QuotaExhausted
from stalk.embedded.quota.spec import Reservation
from stalk.embedded.quota.waiting import wait, waiting_until

log = logging.getLogger("stalk.quota")

Units = int | str | Callable[..., int | str]
OnExhausted = Callable[..., Any]


def charge_key(request: Any) -> str:
    """The ledger key of the next charge in this task run: the task id, so a redelivery (same id, same
    retries) is never charged twice. A `self.retry()` run makes the call again, so it is charged again
    (`<id>#retry<n>`); a run that charges more than once gets `#2`, `#3`... in a fixed order."""
    task_id = getattr(request, "id", None)
    if not task_id:  # called directly, outside a worker: every call is its own charge
        return f"direct-{uuid.uuid4()}"
    count = getattr(request, "_stalk_charges", 0) + 1
    try:
        request._stalk_charges = count
    except AttributeError:
        count = 1
    retries = getattr(request, "retries", 0) or 0
    key = task_id if not retries else f"{task_id}#retry{retries}"
    return key if count == 1 else f"{key}#{count}"


@contextmanager
def charging(task: Task, quota: str, units: int | str = 1, priority: bool = False,
             key: str | None = None) -> Iterator[Reservation]:
    """Reserve before the body, settle after: ok when it returns, failed when it raises.
    QuotaExhausted comes out of the `with` line, before anything is called."""
    ledger = ledger_for_app(task.app)
    key = key or charge_key(task.request)
    reservation = ledger.reserve(quota, units, key, priority=priority)
    ok = False
    try:
        yield reservation
        ok = True
    finally:
        _settle(ledger, key, ok)


def _settle(ledger: Any, key: str, ok: bool) -> None:
    """A settle that fails must not fail the task: the call was made, its units stay charged."""
    try:
        ledger.settle(key, ok)
    except QuotaError as exc:
        log.warning("quota: could not settle %s (its units stay charged): %s", key, exc)


def metered(quota: str, units: Units = 1, priority_arg: str = "priority",
            on_exhausted: OnExhausted | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Charge `quota` once per task id for each run of the decorated task body.

        @app.task(bind=True)
        @metered("youtube", units="videos.list", on_exhausted=retry_priority_at_reset)
        def fetch(self, video_id, priority=False): ...

    `units`: a number, a call name from the quota's `costs`, or a callable of the task's arguments.
    `priority_arg`: the task argument that marks a priority call (may use the priority reserve).
    `on_exhausted(task, exc, *args, **kwargs)`: called instead of the body when the quota is spent
    (its return value is the task's result); without it QuotaExhausted is raised."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(fn, "_stalk_metered", False):
            return fn
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = bool(args) and isinstance(args[0], Task)
            task = args[0] if bound else current_task
            call_args = args[1:] if bound else args
            if task is None:
                raise QuotaError(f"{fn.__name__}: a metered function must run as a Celery task")
            try:
                arguments = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # Celery reports the bad call; nothing is charged
            arguments.apply_defaults()
            priority = bool(arguments.arguments.get(priority_arg, kwargs.get(priority_arg, False)))
            cost = units(*call_args, **kwargs) if callable(units) else units
            until = waiting_until(task.request)
            if until is not None:  # a step of a wait for the reset: charge nothing, wait on
                raise wait(task, until, None)
            try:
                with charging(task, quota, cost, priority):
                    return fn(*args, **kwargs)
            except QuotaExhausted as exc:
                if on_exhausted is None or exc.name != quota:
                    raise
                return on_exhausted(task, exc, *call_args, **kwargs)

        wrapper._stalk_metered = True  # type: ignore[attr-defined]
        wrapper.__signature__ = signature  # type: ignore[attr-defined]  # Celery checks call arguments by it
        return wrapper

    return decorate


def retry_priority_at_reset(task: Task, exc: QuotaExhausted, *args: Any, **kwargs: Any) -> Any:
    """An `on_exhausted` for priority work: run again when the quota resets (in steps shorter than the
    broker's visibility timeout, so Redis never delivers it twice); a normal call fails with exc."""
    if exc.priority:
        raise wait(task, exc.resets_at, exc)
    raise exc


class MeteredTask(Task):
    """A Task base whose runs are metered when `quota` is set, e.g.
    `@app.task(bind=True, base=MeteredTask, quota="youtube", units=100)`; override `on_exhausted`.

    Any MeteredTask can also meter part of its body: `with self.charge("youtube", "search.list"):`."""

    abstract = True
    quota: str | None = None
    units: Units = 1
    priority_arg: str = "priority"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is None or not cls.quota:
            return
        is_static = isinstance(run, staticmethod)
        fn = run.__func__ if is_static else run
        wrapped = metered(cls.quota, cls.units, cls.priority_arg, on_exhausted=_call_on_exhausted)(fn)
        cls.run = staticmethod(wrapped) if is_static else wrapped

    def on_exhausted(self, exc: QuotaExhausted, *args: Any, **kwargs: Any) -> Any:
        """Called instead of the body when the quota is spent; the default raises QuotaExhausted."""
        raise exc

    def retry_at_reset(self, exc: QuotaExhausted) -> Any:
        """`raise self.retry_at_reset(exc)`: run again when the quota resets (waiting in steps)."""
        return wait(self, exc.resets_at, exc)

    def charge(self, quota: str, units: int | str = 1, priority: bool = False,
               key: str | None = None) -> Any:
        return charging(self, quota, units, priority, key)


def _call_on_exhausted(task: Task, exc: QuotaExhausted, *args: Any, **kwargs: Any) -> Any:
    return task.on_exhausted(exc, *args, **kwargs)
