"""Queue depths and purge, straight from the broker.

Redis: a queue is a list, plus one list per priority step (kombu's sep "\\x06\\x16" and steps
[0, 3, 6, 9]: `q`, `q\\x06\\x163`, `q\\x06\\x166`, `q\\x06\\x169`); depth is the sum. AMQP: a passive
queue_declare reports the message count.

A purge says which tasks it deleted, as a `stalk-purged` event the stack's event store folds (its tasks
turn PURGED, in history too): on redis the ids of the messages read and deleted in one transaction; on
AMQP, where a purge deletes without naming, no ids (the store infers them from what it saw sent)."""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from stalk.embedded.control.problems import ControlError
from stalk.embedded.events.fold import PURGED_EVENT

log = logging.getLogger("stalk.control")
IDS_PER_EVENT = 2_000  # a purge of many messages is told in events of this many ids

DEFAULT_SEP = "\x06\x16"
DEFAULT_STEPS = (0, 3, 6, 9)
BINDING_PREFIX = "_kombu.binding."
INTERNAL_EXCHANGES = ("celery.pidbox", "reply.celery.pidbox", "celeryev")


def priority_names(queue: str, sep: str = DEFAULT_SEP, steps: Iterable[int] = DEFAULT_STEPS) -> list[str]:
    """The Redis lists holding `queue`'s messages, one per priority step (step 0 is the plain name)."""
    return [queue if not step else f"{queue}{sep}{step}" for step in steps]


def is_redis(app: Celery) -> bool:
    return str(app.conf.broker_url or "").startswith(("redis", "rediss", "sentinel"))


def queue_depths(app: Celery, queues: Iterable[str]) -> dict[str, int]:
    """queue -> messages waiting (not counting reserved/unacked ones). Raises ControlError."""
    names = list(dict.fromkeys(q for q in queues if q))
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            if is_redis(app):
                return _redis_depths(conn.default_channel, names)
            return _amqp_depths(conn, names)
    except ControlError:
        raise
    except Exception as exc:
        raise ControlError(f"queue depths: broker unreachable: {exc}") from None


def _redis_depths(channel: Any, names: list[str]) -> dict[str, int]:
    sep = getattr(channel, "sep", DEFAULT_SEP)
    steps = tuple(getattr(channel, "priority_steps", DEFAULT_STEPS))
    client = channel.client
    names = list(dict.fromkeys([*names, *_declared_redis_queues(client)]))
    with client.pipeline() as pipe:
        for name in names:
            for key in priority_names(name, sep, steps):
                pipe.llen(key)
        sizes = pipe.execute()
    per = len(steps)
    return {name: int(sum(sizes[i * per:(i + 1) * per])) for i, name in enumerate(names)}


def _declared_redis_queues(client: Any) -> list[str]:
    """Queues bound on the broker (kombu keeps `_kombu.binding.<exchange>` sets), minus Celery's own."""
    found: list[str] = []
    for key in client.scan_iter(match=f"{BINDING_PREFIX}*", count=500):
        exchange = _text(key)[len(BINDING_PREFIX):]
        if exchange in INTERNAL_EXCHANGES:
            continue
        for member in client.smembers(key):
            queue = _text(member).split(DEFAULT_SEP)[-1]
            if queue and not queue.startswith("celeryev.") and not queue.endswith("pidbox"):
                found.append(queue)
    return sorted(set(found))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _amqp_depths(conn: Any, names: list[str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    for name in names:
        channel = conn.channel()  # a failed passive declare closes its channel
        try:
            ok = channel.queue_declare(queue=name, passive=True)
            depths[name] = int(ok.message_count)
        except conn.channel_errors:
            continue  # not declared on the broker yet: nothing waits there
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return depths


@dataclass(frozen=True)
class Purged:
    """What a purge deleted: how many messages, their task ids (None: the broker does not say), when."""

    queue: str
    count: int
    ids: list[str] | None
    at: float


def purge(app: Celery, queue: str) -> int:
    """Delete every waiting message of `queue` (all priority sub-queues); returns how many."""
    return purge_messages(app, queue).count


def purge_messages(app: Celery, queue: str) -> Purged:
    """Delete every waiting message of `queue` (all priority sub-queues): how many, and on redis which."""
    if not queue:
        raise ControlError("purge: a queue name is required")
    at = time.time()  # before the first message goes: a later event of a task it names wins over PURGED
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            if is_redis(app):
                ids, count = _redis_purge(conn.default_channel, queue)
                return Purged(queue, count, ids, at)
            channel = conn.channel()
            try:
                return Purged(queue, int(channel.queue_purge(queue) or 0), None, at)
            except conn.channel_errors as exc:
                raise ControlError(f"purge {queue!r}: {exc}") from None
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    except ControlError:
        raise
    except Exception as exc:
        raise ControlError(f"purge {queue!r}: broker unreachable: {exc}") from None


def _redis_purge(channel: Any, queue: str) -> tuple[list[str], int]:
    """Read and delete every priority list of `queue` in one transaction (MULTI: nothing is pushed or
    popped in between), as kombu's own purge deletes them: (the messages' task ids, how many)."""
    sep = getattr(channel, "sep", DEFAULT_SEP)
    steps = tuple(getattr(channel, "priority_steps", DEFAULT_STEPS))
    client = channel.client
    prefix = getattr(client, "global_keyprefix", "")  # kombu prefixes DEL itself, not LRANGE
    with client.pipeline() as pipe:
        for key in priority_names(queue, sep, steps):
            pipe.lrange(prefix + key, 0, -1).delete(key)
        replies = pipe.execute()
    messages = [m for batch in replies[::2] for m in batch or ()]
    ids = [task_id for task_id in map(message_id, messages) if task_id is not None]
    return list(dict.fromkeys(ids)), len(messages)


def message_id(raw: Any) -> str | None:
    """The task id of a message as kombu keeps it in a redis list (JSON, `headers.id`: protocol 2)."""
    try:
        message = json.loads(raw)
        task_id = (message.get("headers") or {}).get("id")
    except (ValueError, TypeError, AttributeError):
        return None
    return task_id if isinstance(task_id, str) else None


def purger(by: str | None = None) -> str:
    """Who purges, for the reason the tasks keep: `by` (what asked: "stalk queues --purge") and user@host."""
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container)
        user = "?"
    who = f"{user}@{socket.gethostname()}"
    return f"{by} ({who})" if by else who


def announce_purge(app: Celery, purged: Purged, by: str) -> bool:
    """Tell every event receiver (the stack's store) what `purged` deleted; False if that failed (the
    purge itself is done: its tasks stay as they were in the store)."""
    if not purged.count:
        return True
    ids = purged.ids
    chunks: list[list[str] | None] = (
        [None] if ids is None else [ids[i:i + IDS_PER_EVENT] for i in range(0, len(ids), IDS_PER_EVENT)])
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            dispatcher = app.events.Dispatcher(conn, enabled=True, buffer_while_offline=False)
            try:
                for chunk in chunks:
                    dispatcher.send(PURGED_EVENT, timestamp=purged.at, queue=purged.queue, ids=chunk, by=by,
                                    count=purged.count)
            finally:
                dispatcher.close()
    except Exception as exc:
        log.warning("[stalk] purged %s message(s) from %s, but could not mark their tasks PURGED: %s: %s",
                    purged.count, purged.queue, type(exc).__name__, exc)
        return False
    return True


QUEUE_SCAN_LIMIT = 20_000  # messages read at most to find task ids in the queues (queued_ids)


def _redis_layout(channel: Any) -> tuple[str, tuple[int, ...], Any]:
    return (getattr(channel, "sep", DEFAULT_SEP), tuple(getattr(channel, "priority_steps", DEFAULT_STEPS)),
            channel.client)


def queue_exists(app: Celery, queue: str, known: Iterable[str] = ()) -> bool:
    """Whether `queue` is a queue: `known` (the app's routes, the workers' queues), bound on a redis broker
    (kombu's bindings), holding messages, or declared on an AMQP broker. Raises ControlError."""
    if queue in set(known):
        return True
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            if is_redis(app):
                sep, steps, client = _redis_layout(conn.default_channel)
                if queue in _declared_redis_queues(client):
                    return True
                with client.pipeline() as pipe:
                    for key in priority_names(queue, sep, steps):
                        pipe.llen(key)
                    return any(pipe.execute())
            channel = conn.channel()
            try:
                channel.queue_declare(queue=queue, passive=True)
                return True
            except conn.channel_errors:
                return False
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    except Exception as exc:
        raise ControlError(f"queue {queue!r}: broker unreachable: {exc}") from None


def queued_ids(app: Celery, queues: Iterable[str], ids: Iterable[str],
               limit: int = QUEUE_SCAN_LIMIT) -> set[str] | None:
    """Which of `ids` wait in `queues` (and every queue bound on the broker, all priority lists); None
    when that cannot be told cheaply: an AMQP broker (a queue is read only by taking its messages), or
    more than `limit` messages waiting."""
    if not is_redis(app):
        return None
    wanted = set(ids)
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        sep, steps, client = _redis_layout(conn.default_channel)
        prefix = getattr(client, "global_keyprefix", "")  # kombu prefixes LLEN itself, not LRANGE
        names = list(dict.fromkeys([*queues, *_declared_redis_queues(client)]))
        keys = [key for name in names for key in priority_names(name, sep, steps)]
        with client.pipeline() as pipe:
            for key in keys:
                pipe.llen(key)
            sizes = pipe.execute()
        if sum(sizes) > limit:
            return None
        found: set[str] = set()
        with client.pipeline() as pipe:
            for key, size in zip(keys, sizes, strict=True):
                if size:
                    pipe.lrange(prefix + key, 0, -1)
            for batch in pipe.execute():
                found.update(t for t in map(message_id, batch or ()) if t in wanted)
    return found
