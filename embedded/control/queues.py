"""Queue depths and purge, straight from the broker.

Redis: a queue is a list, plus one list per priority step (kombu's sep "\\x06\\x16" and steps
[0, 3, 6, 9]: `q`, `q\\x06\\x163`, `q\\x06\\x166`, `q\\x06\\x169`); depth is the sum. AMQP: a passive
queue_declare reports the message count."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from celery import Celery

from stalk.embedded.control.problems import ControlError

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


def purge(app: Celery, queue: str) -> int:
    """Delete every waiting message of `queue` (all priority sub-queues); returns how many."""
    if not queue:
        raise ControlError("purge: a queue name is required")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            try:
                return int(channel.queue_purge(queue) or 0)
            except conn.channel_errors as exc:
                raise ControlError(f"purge {queue!r}: {exc}") from None
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    except ControlError:
        raise
    except Exception as exc:
        raise ControlError(f"purge {queue!r}: broker unreachable: {exc}") from None
