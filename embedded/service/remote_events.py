"""RemoteEvents: the event store's reads over the API, with the store's return types (TaskRecord,
TaskEvent, WorkerRecord, Changes), for the panel's thread workers.

A quick read (`query(..., wait=...)`, the Tasks screen's on the UI thread) never touches the socket: it
raises StoreBusy at once, and the screen's thread worker asks instead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from stalk.embedded.events import Changes, StoreBusy, TaskEvent, TaskRecord, Unwanted, WorkerRecord
from stalk.embedded.events.records import TASK_FIELDS
from stalk.embedded.service.client import ApiError, StackClient
from stalk.embedded.service.codec import decode
from stalk.embedded.service.feed import ChangeFeed

PAGE_OMITS = "result,exception,traceback"  # what `query`'s records leave out (None): the Tasks table shows none
# of them (a task's detail reads `get`); a page of 500 could carry a result repr of up to 1 KB per row and a
# failure's traceback of several
DETAIL_KEPT = 0.5  # s a task's detail answer serves events_of/children_of after get (one detail read)
DETAILS_KEPT = 4  # answers kept (a task's and its parent's)


def record_of(row: dict[str, Any]) -> TaskRecord:
    """A listed task (routes/tasks.py `listed`) back into the store's record."""
    rec = TaskRecord(**{name: row[name] for name in TASK_FIELDS if name in row})
    attempts = row.get("attempts")
    if attempts:
        rec.attempts = [(a.get("at"), a.get("worker"), a.get("reason")) for a in attempts]
    return rec


ROW_FIELDS = [*TASK_FIELDS, "attempts"]  # routes/tasks.py ROW_FIELDS: TaskRecord's positional order
_KNOWN = frozenset(ROW_FIELDS)


def records_of(page: dict[str, Any]) -> list[TaskRecord]:
    """A page asked with shape=rows back into records."""
    fields, rows = page["fields"], page["rows"]
    if fields == ROW_FIELDS:
        records = [TaskRecord(*row) for row in rows]
    else:  # a server of another version: by name
        records = [TaskRecord(**{k: v for k, v in zip(fields, row, strict=True) if k in _KNOWN}) for row in rows]
    for rec in records:
        if rec.attempts:
            rec.attempts = [tuple(attempt) for attempt in rec.attempts]
    return records


class RemoteEvents:
    """What the panel reads of `stack.events`, each call one API request."""

    def __init__(self, client: StackClient, feed: ChangeFeed) -> None:
        self.client = client
        self.feed = feed
        self._details: dict[str, tuple[float, dict[str, Any]]] = {}  # task id -> (when, its detail)
        self._lock = threading.Lock()

    # -- tasks ----------------------------------------------------------------------------------

    def query(self, state: str | None = None, name: str | None = None, queue: str | None = None,
              worker: str | None = None, search: str | None = None, sort_key: str = "received",
              reverse: bool = True, limit: int | None = 500, wait: float | None = None,
              wanted: Callable[[], bool] | None = None, offset: int = 0) -> list[TaskRecord]:
        """The store's `query` over the API (limit None: the API's most, 5000), records without their
        result, exception and traceback (PAGE_OMITS). `wanted` is asked once the answer is in (a request is not cut short): an
        answer no longer wanted raises Unwanted, as the store's walk does, and no records are built for it
        (a key's re-query waits less for the GIL)."""
        if wait is not None:
            raise StoreBusy("a remote store is read from a thread, never on the caller's own")
        page = self.client.get("/tasks", state=state, name=name, queue=queue, worker=worker, search=search,
                               sort=sort_key, reverse=_flag(reverse), limit=limit or 5000, offset=offset,
                               count="false", shape="rows", omit=PAGE_OMITS)
        if wanted is not None and not wanted():
            raise Unwanted("the query's answer is no longer wanted")
        return records_of(page)

    def page(self, limit: int = 500, offset: int = 0, **filters: Any) -> tuple[int, list[TaskRecord]]:
        """(how many match, the records of one page): `query`'s filters and `sort`."""
        if "reverse" in filters:
            filters["reverse"] = _flag(filters["reverse"])
        answer = self.client.get("/tasks", limit=limit, offset=offset, **filters)
        return answer["total"], [record_of(row) for row in answer["tasks"]]

    def get(self, task_id: str) -> TaskRecord | None:
        detail = self._read_detail(task_id)
        return None if detail is None else record_of(detail["task"])

    def events_of(self, task_id: str) -> list[TaskEvent]:
        detail = self._kept_detail(task_id)
        return [] if detail is None else decode(list[TaskEvent], detail["events"])

    def children_of(self, task_id: str) -> list[TaskRecord]:
        detail = self._kept_detail(task_id)
        return [] if detail is None else [record_of(row) for row in detail["children"]]

    def _read_detail(self, task_id: str) -> dict[str, Any] | None:
        try:
            detail = self.client.get(f"/tasks/{quote(task_id, safe='')}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        with self._lock:
            self._details[task_id] = (time.monotonic(), detail)
            while len(self._details) > DETAILS_KEPT:
                self._details.pop(next(iter(self._details)))
        return detail

    def _kept_detail(self, task_id: str) -> dict[str, Any] | None:
        """The answer `get` just read for this task (a detail reads get, children_of, get of the parent,
        events_of in a row), else a new one."""
        with self._lock:
            kept = self._details.get(task_id)
        if kept is not None and time.monotonic() - kept[0] < DETAIL_KEPT:
            return kept[1]
        return self._read_detail(task_id)

    def prepare_sort(self, sort_key: str, keep: bool = False) -> None:
        if sort_key != "received":
            self.client.post("/tasks/prepare", {"sort": [sort_key], "keep": keep})

    def prepare_search(self, keep: bool = False) -> None:
        self.client.post("/tasks/prepare", {"search": True, "keep": keep})

    # -- figures --------------------------------------------------------------------------------

    def _stats(self, seconds: int = 0, n: int = 0) -> dict[str, Any]:
        return self.client.get("/tasks/stats", seconds=seconds, n=n)

    def throughput(self, seconds: int) -> list[dict]:
        return self._stats(seconds=seconds)["throughput"]

    def counts_by_state(self) -> dict[str, int]:
        return self._stats()["counts"]

    def recent_failures(self, n: int) -> list[TaskRecord]:
        return [record_of(row) for row in self._stats(n=n)["recent_failures"]]

    def __len__(self) -> int:
        return int(self._stats()["total"])

    def __bool__(self) -> bool:  # a truth test is no request (it may be on the UI thread)
        return True

    def workers(self) -> list[WorkerRecord]:
        return decode(list[WorkerRecord], self.client.get("/workers"))

    # -- changes --------------------------------------------------------------------------------

    def subscribe(self, cb: Callable[[Changes], None]) -> Callable[[], None]:
        """`cb(Changes)` on the feed's thread per batch naming tasks or workers. A resync (the stream came
        back, or this client fell behind) is a batch naming nothing: re-read what is shown."""
        lock = threading.Lock()

        def on_batch(batch: dict[str, Any]) -> None:
            with lock:
                cb(Changes(frozenset(batch.get("tasks", ())), frozenset(batch.get("workers", ()))))

        def on_workers(batch: dict[str, Any]) -> None:
            if "tasks" not in batch and "tasks" not in batch.get("resync", ()):  # else on_batch had it
                on_batch(batch)

        stops = [self.feed.listen("tasks", on_batch), self.feed.listen("workers", on_workers)]

        def unsubscribe() -> None:
            for stop in stops:
                stop()

        return unsubscribe


def _flag(value: Any) -> str:
    return "true" if value else "false"

