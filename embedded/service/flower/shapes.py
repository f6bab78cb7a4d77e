"""Stalk's records in Flower's shapes: a task as celery.events.state.Task.as_dict() gives it (Flower's
/api/tasks and /api/task/info), a worker as Flower's inspector caches it (/api/workers)."""

from __future__ import annotations

import json
from typing import Any

from stalk.embedded.events import TaskRecord

FINISH_FIELD = {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "revoked", "REJECTED": "rejected"}
INSPECT_METHODS = ("stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked", "conf")


def task_dict(rec: TaskRecord, children: list[str] | None = None) -> dict[str, Any]:
    """Celery's Task fields in Celery's order; `worker` is the hostname, as Flower writes it."""
    finished = FINISH_FIELD.get(rec.state)
    stamps = dict.fromkeys(("rejected", "succeeded", "failed", "revoked"))
    if finished:
        stamps[finished] = rec.finished
    return {
        "uuid": rec.task_id, "name": rec.name, "state": rec.state, "received": rec.received, "sent": rec.sent,
        "started": rec.started, "rejected": stamps["rejected"], "succeeded": stamps["succeeded"],
        "failed": stamps["failed"], "retried": rec.retried, "revoked": stamps["revoked"], "args": rec.args,
        "kwargs": rec.kwargs, "eta": rec.eta, "expires": rec.expires, "retries": rec.retries,
        "worker": rec.worker, "result": rec.result, "exception": rec.exception, "timestamp": rec.updated,
        "runtime": rec.runtime, "traceback": rec.traceback, "exchange": None, "routing_key": rec.routing_key,
        "clock": 0, "client": None, "root": rec.root_id, "root_id": rec.root_id, "parent": rec.parent_id,
        "parent_id": rec.parent_id, "children": children or [],
    }


def task_info(rec: TaskRecord, children: list[str]) -> dict[str, Any]:
    """/api/task/info: the task, with `task-id` as Flower's documented example names it."""
    return {**task_dict(rec, children), "task-id": rec.task_id}


def safe_result(value: Any) -> Any:
    """A result as Flower answers it: itself when JSON can hold it, else its repr."""
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value
