"""Events missed while disconnected (broker restart, Stalk not running) recovered from the result backend.

After every (re)connect, unfinished tasks are looked up in the backend; those that finished meanwhile
get the final event they would have had."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery.utils.saferepr import saferepr

FINAL_EVENTS = {"SUCCESS": "task-succeeded", "FAILURE": "task-failed", "REVOKED": "task-revoked"}
log = logging.getLogger(__name__)


def final_event(task_id: str, meta: dict) -> dict | None:
    """The task-succeeded/failed/revoked event a backend result stands for (None if not finished)."""
    type_ = FINAL_EVENTS.get(meta.get("status"))  # type: ignore[arg-type]
    if type_ is None:
        return None
    event: dict[str, Any] = {"type": type_, "uuid": task_id, "timestamp": _epoch(meta.get("date_done")),
                             "hostname": None}
    result = meta.get("result")
    if type_ == "task-succeeded":
        event["result"] = saferepr(result)
    elif type_ == "task-failed":
        event["exception"] = saferepr(result)
        event["traceback"] = meta.get("traceback")
    return event


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return time.time()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return time.time()


def reconcile(task_ids: list[str], backend: Any, ingest: Callable[[dict], None]) -> int:
    """Feed the final events of the tasks in `task_ids` the backend knows finished; how many."""
    found = 0
    for task_id in task_ids:
        try:
            meta = backend.get_task_meta(task_id, cache=False)
        except Exception as exc:  # the backend went away again: the next connect retries
            log.info("reconcile stopped: %r", exc)
            break
        event = final_event(task_id, meta or {})
        if event is not None:
            received = received_event(task_id, meta)
            if received is not None:
                ingest(received)
            ingest(event)
            found += 1
    return found


RECOVER_MAX = 10_000  # results looked at when a stack starts


def unknown_results(backend: Any, known: Callable[[str], bool], limit: int = RECOVER_MAX) -> list[str]:
    """Ids of results in a Redis result backend that the store does not know: tasks that finished
    after the history's last write before Stalk died (SIGKILL, power loss). Other backends: []."""
    client = getattr(backend, "client", None)
    prefix = getattr(backend, "task_keyprefix", b"celery-task-meta-")
    prefix = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
    if client is None or not hasattr(client, "scan_iter"):
        return []
    found: list[str] = []
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            task_id = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix):]
            if not known(task_id):
                found.append(task_id)
            if len(found) >= limit:
                break
    except Exception as exc:  # the backend went away: the next connect reconciles what it can
        log.info("result scan stopped: %r", exc)
    return found


def received_event(task_id: str, meta: dict) -> dict | None:
    """With result_extended, a backend result also names the task, its arguments, worker and queue."""
    if not meta.get("name"):
        return None
    info = meta.get("delivery_info") or {}
    return {"type": "task-received", "uuid": task_id, "name": meta["name"],
            "args": saferepr(meta.get("args") or ()), "kwargs": saferepr(meta.get("kwargs") or {}),
            "retries": meta.get("retries") or 0, "hostname": meta.get("worker"),
            "timestamp": _epoch(meta.get("date_done")) - 1e-6,
            "routing_key": info.get("routing_key"), "queue": meta.get("queue") or info.get("routing_key")}
