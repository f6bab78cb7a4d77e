"""Patches Celery's task sender: a client's sends skip the queue declaration kombu's own cache says is done.

Overrides `app.amqp.send_task_message` (celery/app/amqp.py: a cached_property holding the sender that
`AMQP._create_task_sender` builds, called by `Celery.send_task`) with a wrapper on the instance that
passes `declare=[]` when Celery would pass `declare=[queue]`. Relies on kombu's declaration cache
(kombu/common.py `_maybe_declare`: `hash(entity)` kept in the connection's `declared_entities` when
`entity.can_cache_declaration`; kombu/connection.py empties it on a new connection) and on Celery's
sender keeping a `declare` it is given. Only on Stalk's redis transport (kombu_redis_channel.NAME),
where a direct queue's task is pushed onto the queue by name (Celery's anonymous exchange): there a
declaration never decides where a message goes. A new connection (kombu empties its cache) declares
again on its first send. Installed by stalk.embedded.stack on Stalk's own client app, undone at stop.

Written against Celery 5.7.0 and kombu 5.7.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks the sender's shape and kombu's cache.

What it buys: kombu's `maybe_declare` binds a copy of the queue (and of its exchange) to the channel
before it looks the queue up in the cache, and throws the copy away: ~40 µs of a send's ~420 µs of
CPU. Client CPU per `send_task` measured alone 417-440 -> 386-387 µs (bench/RESULTS.md 2026-12-04,
morning); end to end (bench/stack_throughput.py) inside the noise. The smallest gain of the patches.

If removed: every send binds and throws away that copy again (the ~40 µs above); nothing else changes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from stalk.embedded.patches import kombu_redis_channel


def skip_declared(app: Celery) -> Callable[[], None] | None:
    """Wrap `app.amqp.send_task_message`; returns what restores it, or None where it does not apply."""
    if app.conf.broker_transport != kombu_redis_channel.NAME:
        return None
    amqp = app.amqp
    send = amqp.send_task_message

    def send_task_message(producer: Any, name: str, message: tuple, **options: Any) -> Any:
        if options.get("declare") is None and options.get("exchange") is None:
            queue = _queue(amqp, options.get("queue"))
            if queue is not None and _declared(producer, queue):
                options["declare"] = []
        return send(producer, name, message, **options)

    amqp.send_task_message = send_task_message

    def restore() -> None:
        amqp.send_task_message = send

    return restore


def _queue(amqp: Any, queue: Any) -> Any:
    """The Queue Celery would declare for this send (None: a name it does not know yet, left to it)."""
    if queue is None:
        return amqp.default_queue
    if isinstance(queue, str):
        return amqp.queues.get(queue)
    return queue


def _declared(producer: Any, queue: Any) -> bool:
    exchange_type = getattr(queue.exchange, "type", "direct")
    if exchange_type != "direct" or not queue.can_cache_declaration:
        return False
    return hash(queue) in producer.connection.declared_entities
