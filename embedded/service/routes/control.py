"""Control of the cluster: task types, workers (report, inspect, pool, autoscale, shutdown), queues (known,
depths, purge) and beat entries (list, run now). Submit and revoke: routes/submit.py, mounted here.

Inputs are checked before anything is sent: a bad value is a 400 naming it; a worker, queue or beat entry
nobody knows is a 404; a broker that does not answer is a 503."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from stalk.embedded.control import (
    INSPECT_KINDS,
    BadInput,
    BeatEntry,
    Control,
    WorkerReport,
    check_count,
    check_name,
    check_rate,
    check_time_limits,
)
from stalk.embedded.service.deps import the_control, the_stack
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.service.responses import JSONResponse
from stalk.embedded.service.routes import submit
from stalk.embedded.service.routes.control_support import acting, as_json
from stalk.embedded.service.task_types import TaskType, task_type, task_types
from stalk.embedded.stack import Stack

router = APIRouter(tags=["control"])
Replies = list[dict[str, Any]]  # Celery's broadcast replies: [{hostname: {"ok": "..."}}]
Timeout = Query(1.0, gt=0, le=10, description="seconds to wait for the workers' replies")


def _unknown(_exc: BadInput) -> bool:
    return True


# -- task types -------------------------------------------------------------------------------------

@router.get("/task-types", response_model=list[TaskType],
            summary="Registered task names (the workers' answer, else the app's), with signature, doc and route")
def list_task_types(refresh: bool = False, control: Control = Depends(the_control),
                    stack: Stack = Depends(the_stack)) -> JSONResponse:
    with acting():
        names = control.registered_tasks(refresh=refresh)
    route = None if stack.mode == "eager" else control.view.route
    return as_json(task_types(names, stack.user_app, route), list[TaskType])


@router.get("/task-types/{name:path}", response_model=TaskType, summary="One registered task type")
def get_task_type(name: str, control: Control = Depends(the_control),
                  stack: Stack = Depends(the_stack)) -> JSONResponse:
    _known_task(control, name)
    route = None if stack.mode == "eager" else control.view.route
    return as_json(task_type(name.strip(), stack.user_app, route))


class RateLimit(BaseModel):
    rate: str | int | None = None  # "10/m", "2/s", 100 (per second); None or "0" removes the limit
    destination: str | None = None  # one worker's hostname; None: every worker


class TimeLimit(BaseModel):
    soft: float | str | None = None  # seconds; None or 0 removes that limit (Celery sets both at once)
    hard: float | str | None = None
    destination: str | None = None


@router.post("/task-types/{name:path}/rate-limit", response_model=Replies,
             summary="Set a task's rate limit on the workers (0 removes it)")
def rate_limit(name: str, body: RateLimit, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        check_rate(body.rate if body.rate not in (None, "") else "0")
        host = None if body.destination is None else check_name("worker", body.destination)
    _known_task(control, name)
    _known_worker(control, host)
    with acting():
        return as_json(control.rate_limit(name, body.rate, host), Replies)


@router.post("/task-types/{name:path}/time-limit", response_model=Replies,
             summary="Set a task's soft and hard time limits on the workers (one left out is removed)")
def time_limit(name: str, body: TimeLimit, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        check_time_limits(body.soft, body.hard)
        host = None if body.destination is None else check_name("worker", body.destination)
    _known_task(control, name)
    _known_worker(control, host)
    with acting():
        return as_json(control.time_limit(name, body.soft, body.hard, host), Replies)


def _known_task(control: Control, name: str) -> None:
    """400 for a name no task can have; 404 when no worker registers it (when some worker could tell)."""
    with acting():
        check_name("task", name)
    with acting(_unknown):
        control.require_task(name)


# -- workers ----------------------------------------------------------------------------------------

def _known_worker(control: Control, hostname: str | None) -> None:
    """404 naming the workers that answer when `hostname` does not answer a ping."""
    if hostname is not None:
        with acting(_unknown):
            control.require_worker(hostname)


@router.get("/inspect/{kind}", response_model=dict[str, Any],
            summary=f"Ask the workers (one of {', '.join(INSPECT_KINDS)}): {{hostname: reply}}")
def inspect(kind: str, destination: list[str] | None = Query(None), timeout: float = Timeout,
            control: Control = Depends(the_control)) -> JSONResponse:
    if kind not in INSPECT_KINDS:
        raise ApiProblem(400, f"inspect: unknown kind {kind!r}; one of {', '.join(INSPECT_KINDS)}")
    with acting():
        hosts = [check_name("worker", h) for h in destination or ()] or None
        return as_json(control.inspect(kind, hosts, timeout), dict[str, Any])


@router.get("/workers/{hostname}", response_model=WorkerReport,
            summary="One worker as it describes itself (answered=false: it did not answer in time)")
def worker_report(hostname: str, timeout: float = Timeout, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        host = check_name("worker", hostname)
        return as_json(control.worker_report(host, timeout=timeout), WorkerReport)


class PoolChange(BaseModel):
    n: int | str = 1


class Autoscale(BaseModel):
    max: int | str
    min: int | str = 0


@router.post("/workers/{hostname}/pool/{direction}", response_model=Replies,
             summary="Grow or shrink a worker's pool by n processes")
def pool(hostname: str, direction: Literal["grow", "shrink"], body: PoolChange,
         control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        n = check_count("n", body.n)
    _known_worker(control, hostname)
    fn = control.pool_grow if direction == "grow" else control.pool_shrink
    with acting():
        return as_json(fn(hostname, n), Replies)


@router.post("/workers/{hostname}/autoscale", response_model=Replies, summary="Set a worker's autoscale bounds")
def autoscale(hostname: str, body: Autoscale, control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        high, low = check_count("max", body.max), check_count("min", body.min, minimum=0)
        if high < low:
            raise BadInput(f"autoscale: max ({high}) must be >= min ({low})")
    _known_worker(control, hostname)
    with acting():
        return as_json(control.autoscale(hostname, high, low), Replies)


@router.post("/workers/{hostname}/shutdown", response_model=Replies,
             summary="Warm-shutdown one worker (a supervised one is started again by the stack)")
def shutdown(hostname: str, control: Control = Depends(the_control)) -> JSONResponse:
    _known_worker(control, hostname)
    with acting():
        return as_json(control.shutdown(hostname), Replies)


# -- queues -----------------------------------------------------------------------------------------

@router.get("/queues", response_model=list[str],
            summary="Known queues: the stack's workers', the app's routes', those the workers consume")
def known_queues(control: Control = Depends(the_control)) -> list[str]:
    with acting():
        return control.known_queues()


@router.get("/queues/depths", response_model=dict[str, int],
            summary="Messages waiting per queue (priority sub-queues included; {} in eager mode)")
def queue_depths(control: Control = Depends(the_control)) -> dict[str, int]:
    with acting():
        return control.queue_depths()


class Purge(BaseModel):
    by: str | None = None  # who asks (shown in the purged tasks' reason), e.g. "the panel"


class Purged(BaseModel):
    queue: str
    purged: int


@router.post("/queues/{name:path}/purge", response_model=Purged,
             summary="Delete every message waiting in a queue (their tasks turn PURGED)")
def purge(name: str, body: Purge, control: Control = Depends(the_control)) -> Purged:
    with acting():
        queue = check_name("queue", name)
    with acting(_unknown):
        return Purged(queue=queue, purged=control.purge(queue, by=body.by or "the API"))


# -- beat -------------------------------------------------------------------------------------------

@router.get("/beat/entries", response_model=list[BeatEntry],
            summary="The beat schedule: each entry's task, schedule, last and next run, run count")
def beat_entries(control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        return as_json(control.beat_entries(), list[BeatEntry])


@router.post("/beat/entries/{name:path}/run", response_model=submit.EntrySent,
             summary="Send a beat entry now with its args, kwargs and options (counted as one of its runs)")
def run_beat_entry(name: str, wait: float | None = submit.Wait,
                   control: Control = Depends(the_control)) -> JSONResponse:
    with acting():
        entry = check_name("beat entry", name)
    with acting():
        control.ensure_broker()
    with acting(lambda exc: str(exc).startswith("beat entry")):
        result = control.run_beat_entry(entry)
    return as_json(submit.EntrySent(entry=entry, task_id=str(result.id),
                                    outcome=submit.outcome(result, wait) if wait else None))


router.include_router(submit.router)
