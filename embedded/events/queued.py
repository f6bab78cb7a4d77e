"""Tasks waiting on a Redis broker that no event told the store about: sent while the event receiver was
away (a broker restart) by a client that sends no task-sent event (a plain Celery client, `stalk submit`
from another process), not yet run. Read from the queues (each priority step's list) and from the
unacked table (taken by a worker whose task-received went unheard), as the task-sent event each stands
for, so history shows them PENDING until their own events or results arrive.

kombu's Redis layout: a queue is a list per priority step (`q`, `q\\x06\\x163`, ...), bound queues are
listed in `_kombu.binding.<exchange>` sets (`routing_key\\x06\\x16pattern\\x06\\x16queue`), and `unacked`
maps a delivery tag to `[message, exchange, routing_key]`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery import Celery

log = logging.getLogger(__name__)
SEP = "\x06\x16"
STEPS = (0, 3, 6, 9)
BINDINGS = "_kombu.binding."
INTERNAL_EXCHANGES = ("celery.pidbox", "reply.celery.pidbox", "celeryev")
PER_QUEUE = 5_000  # messages read per list, the newest first: what history lacks was sent last


def queued_events(app: Celery, known: Callable[[str], bool], queues: tuple[str, ...] = ()) -> list[dict]:
    """task-sent events for the waiting and taken messages of `app`'s Redis broker the store does not
    know (`known`): the bound queues and `queues`. Other brokers, or a broker that went away: []."""
    if not str(app.conf.broker_url or "").startswith(("redis", "rediss")):
        return []
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel: Any = conn.default_channel
            client = channel.client
            now = time.time()
            events = [e for e in _waiting(client, queues, now) if not known(e["uuid"])]
            events += [e for e in _taken(client, getattr(channel, "unacked_key", "unacked"), now)
                       if not known(e["uuid"])]
    except Exception as exc:  # the broker went away again: the next connect looks again
        log.info("queue catch-up stopped: %r", exc)
        return []
    return list({e["uuid"]: e for e in events}.values())


def _waiting(client: Any, queues: tuple[str, ...], now: float) -> Iterator[dict]:
    for queue in sorted({*queues, *_bound_queues(client)}):
        for step in STEPS:
            key = queue if not step else f"{queue}{SEP}{step}"
            for raw in client.lrange(key, 0, PER_QUEUE - 1):  # kombu pushes on the left: the newest
                event = sent_event(raw, now, queue)
                if event is not None:
                    yield event


def _taken(client: Any, unacked_key: str, now: float) -> Iterator[dict]:
    for raw in client.hvals(unacked_key):
        try:
            message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        event = sent_event(message, now, None, routing_key)
        if event is not None:
            yield event


def _bound_queues(client: Any) -> set[str]:
    found: set[str] = set()
    for key in client.scan_iter(match=f"{BINDINGS}*", count=500):
        if _text(key)[len(BINDINGS):] in INTERNAL_EXCHANGES:
            continue
        for member in client.smembers(key):
            queue = _text(member).split(SEP)[-1]
            if queue and not queue.startswith("celeryev.") and not queue.endswith("pidbox"):
                found.add(queue)
    return found


def sent_event(raw: Any, now: float, queue: str | None, routing_key: str | None = None) -> dict | None:
    """The task-sent event a kombu message (Celery task protocol 2) stands for; None if it is no task."""
    try:
        message = json.loads(raw) if isinstance(raw, str | bytes) else raw
        headers = message.get("headers") or {}
        properties = message.get("properties") or {}
    except (ValueError, TypeError, AttributeError):
        return None
    task_id, name = headers.get("id"), headers.get("task")
    if not isinstance(task_id, str) or not isinstance(name, str):
        return None
    info = properties.get("delivery_info") or {}
    routing_key = routing_key or info.get("routing_key")
    return {"type": "task-sent", "uuid": task_id, "name": name, "args": headers.get("argsrepr"),
            "kwargs": headers.get("kwargsrepr"), "retries": headers.get("retries") or 0,
            "eta": headers.get("eta"), "expires": headers.get("expires"), "parent_id": headers.get("parent_id"),
            "root_id": headers.get("root_id"), "group_id": headers.get("group"),
            "priority": properties.get("priority"), "queue": queue or routing_key, "routing_key": routing_key,
            "timestamp": now}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
