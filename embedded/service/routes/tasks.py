"""/tasks and /workers: the event store's tasks (filtered, sorted, paged), one task's detail, the
dashboard's figures, the workers the events describe, and the indexes a view asks to keep.

Every route is a plain `def`: FastAPI runs it in its thread pool, so a walk of the store (a few ms for
20,000 tasks, paced by the store) never holds the server's event loop. Pages are answered as JSON built
here (no response-model validation of 500 records per call) and encoded by orjson (a page of 500 rows:
~0.4 ms, against 10-20 ms for the json module on a busy machine); the models below document them."""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Literal, TypedDict

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from stalk.embedded.events import EventStore, TaskEvent, TaskRecord, WorkerRecord
from stalk.embedded.events.queries import SORT_KEYS, wanted_states
from stalk.embedded.events.records import TASK_FIELDS, attempts_listed
from stalk.embedded.service.codec import encode
from stalk.embedded.service.deps import the_events
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.service.responses import JSONResponse

router = APIRouter(tags=["tasks"])
SortKey = Literal["received", "name", "state", "runtime", "worker", "queue"]
assert set(SortKey.__args__) == set(SORT_KEYS)  # type: ignore[attr-defined]
MAX_LIMIT = 5000


class Attempt(BaseModel):
    kind: Literal["retry", "requeued"]
    at: float | None
    worker: str | None
    reason: str | None


class Task(BaseModel):
    """A task as the events describe it (TaskRecord); texts are the events' display reprs."""

    task_id: str
    name: str | None = None
    state: str
    args: str | None = None
    kwargs: str | None = None
    queue: str | None = None
    routing_key: str | None = None
    queue_source: str | None = None
    priority: int | None = None
    worker: str | None = None
    retries: int = 0
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    runtime: float | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    progress: dict | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    replaced: str | None = None
    eta: str | None = None
    expires: str | None = None
    updated: float | None = None
    retried: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)


class TaskPage(BaseModel):
    total: int | None = Field(description="How many tasks match (null when asked with count=false)")
    tasks: list[Task] = Field(default_factory=list, description="The page (shape=records)")
    fields: list[str] | None = Field(None, description="shape=rows: the names of each row's values")
    rows: list[list[Any]] | None = Field(None, description="shape=rows: the page, one list of values a task "
                                                           "(attempts as [at, worker, reason] lists)")


class TaskDetail(BaseModel):
    task: Task
    events: list[dict[str, Any]] = Field(description="The task's timeline: {type, timestamp, hostname, fields}")
    children: list[Task]


class Bucket(BaseModel):
    succeeded: int
    failed: int


class TaskStats(BaseModel):
    total: int = Field(description="Tasks in the store")
    counts: dict[str, int] = Field(description="Tasks per state (states with none left out)")
    throughput: list[Bucket] = Field(description="Per second, oldest first, the last `seconds`")
    recent_failures: list[Task] = Field(description="The last `n` tasks that failed, newest first")


class Prepare(BaseModel):
    sort: list[SortKey] = Field(default_factory=list, description="Sort keys to build an index for")
    search: bool = Field(False, description="Build the search texts")
    keep: bool = Field(False, description="Keep them even while no query reads them")


ROW_FIELDS = (*TASK_FIELDS, "attempts")  # TaskRecord's own order: a row is its positional arguments
row_of = attrgetter(*ROW_FIELDS)  # a record's values as a tuple, read in C (3x a comprehension of getattr)


def fast_json(body: Any) -> Response:
    """`body` as JSON bytes by orjson; what it cannot encode (an integer past 64 bits in a task's progress)
    goes through the json module as before."""
    try:
        return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return JSONResponse(body)


def listed(rec: TaskRecord) -> dict[str, Any]:
    """A record as the API lists it: its fields and its attempts, as `stalk tasks --json`."""
    row = rec.as_dict()
    row["attempts"] = attempts_listed(rec)
    return row


class Filters(TypedDict):
    state: str | None
    name: str | None
    queue: str | None
    worker: str | None
    search: str | None


def _filters(state: str | None, name: str | None, queue: str | None, worker: str | None,
             search: str | None) -> Filters:
    return {"state": state or None, "name": name or None, "queue": queue or None, "worker": worker or None,
            "search": search or None}


def _total(events: EventStore, filters: Filters, found: int, asked: int) -> int:
    """How many tasks match: the store's size or its state counts when they say; the page itself when it
    is not full; else a count (a walk in arrival order, no sort)."""
    if found < asked:
        return found
    if not any(filters.values()):
        return len(events)
    state = filters["state"]
    if state and not any(v for k, v in filters.items() if k != "state"):
        counts = events.counts_by_state()
        return sum(counts.get(s, 0) for s in wanted_states(state))
    return len(events.query(**filters, sort_key="received", reverse=False, limit=None))


@router.get("/tasks", response_model=TaskPage, summary="Tasks by filter and sort, a page at a time")
def list_tasks(state: str | None = Query(None, description="A state, or several: success,failure"),
               name: str | None = Query(None, description="Names containing this text"),
               queue: str | None = Query(None, description="This queue (or routing key)"),
               worker: str | None = Query(None, description="Workers whose hostname contains this text"),
               search: str | None = Query(None, description="Text in the id, name, args, kwargs (any case)"),
               sort: SortKey = Query("received"), reverse: bool = Query(True, description="Descending"),
               limit: int = Query(500, ge=1, le=MAX_LIMIT), offset: int = Query(0, ge=0),
               count: bool = Query(True, description="false: skip counting the matches (total is null)"),
               shape: Literal["records", "rows"] = Query(
                   "records", description="rows: `fields` once and a list of values per task (half the bytes)"),
               omit: str | None = Query(None, description="Fields sent as null, comma-separated: a list's "
                                                          "table needs no traceback (/tasks/{id} has it)"),
               events: EventStore = Depends(the_events)) -> Response:
    filters = _filters(state, name, queue, worker, search)
    blank = _omitted(omit)
    asked = offset + limit
    found = events.query(**filters, sort_key=sort, reverse=reverse, limit=asked)
    total = _total(events, filters, len(found), asked) if count else None
    if shape == "rows":
        rows: list[Any] = [row_of(r) for r in found[offset:]]
        if blank:
            rows = [_blanked(row, blank) for row in rows]
        return fast_json({"total": total, "fields": ROW_FIELDS, "rows": rows})
    tasks = [listed(r) for r in found[offset:]]
    for task in tasks if blank else ():
        task.update(dict.fromkeys(ROW_FIELDS[i] for i in blank))
    return fast_json({"total": total, "tasks": tasks})


def _omitted(omit: str | None) -> list[int]:
    """The positions in a row of the fields named in `omit` (400 for a name no task has)."""
    names = [n.strip() for n in (omit or "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(TASK_FIELDS))
    if unknown:
        raise ApiProblem(400, f"omit: no task field {', '.join(map(repr, unknown))} (fields: {', '.join(TASK_FIELDS)})")
    return sorted({ROW_FIELDS.index(n) for n in names})


def _blanked(row: tuple, blank: list[int]) -> list:
    out = list(row)
    for i in blank:
        out[i] = None
    return out


@router.get("/tasks/stats", response_model=TaskStats,
            summary="Counts by state, throughput over the last `seconds`, the last `n` failures")
def task_stats(seconds: int = Query(60, ge=0, le=3600), n: int = Query(8, ge=0, le=500),
               events: EventStore = Depends(the_events)) -> Response:
    return fast_json({
        "total": len(events), "counts": events.counts_by_state(),
        "throughput": events.throughput(seconds) if seconds else [],
        "recent_failures": [listed(r) for r in events.recent_failures(n)] if n else []})


@router.post("/tasks/prepare", status_code=204, summary="Build sort indexes or the search texts now")
def prepare(body: Prepare, events: EventStore = Depends(the_events)) -> None:
    """What a view is about to need (a sort by any column, a search at any key): built in this request's
    thread, outside the store's lock, so the view's first query by them is quick."""
    for key in body.sort:
        events.prepare_sort(key, keep=body.keep)
    if body.search:
        events.prepare_search(keep=body.keep)


@router.get("/tasks/{task_id:path}", response_model=TaskDetail, summary="One task, its timeline, its children")
def get_task(task_id: str, events: EventStore = Depends(the_events)) -> Response:
    rec = events.get(task_id)
    if rec is None:
        raise ApiProblem(404, f"no task {task_id!r} in the event store (it holds the last {len(events)} tasks)")
    return fast_json({"task": listed(rec), "events": encode(events.events_of(task_id), list[TaskEvent]),
                         "children": [listed(r) for r in events.children_of(task_id)]})


@router.get("/workers", response_model=list[WorkerRecord], summary="The workers the events describe")
def list_workers(events: EventStore = Depends(the_events)) -> list[WorkerRecord]:
    return events.workers()
