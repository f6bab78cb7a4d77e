"""A client's sends skip the queue declaration kombu's own cache says is done.

Celery passes `declare=[queue]` with every task it sends. kombu's `maybe_declare` then binds a copy of
the queue (and of its exchange) to the channel before it looks the queue up in the connection's cache
of declared entities, and throws the copy away: ~40 µs of a send's ~420 µs of CPU. Once that cache
holds the queue, kombu would declare nothing, so the send passes no declaration. Only on Stalk's redis
transport, where a direct queue's task is pushed onto the queue by name (Celery's anonymous exchange):
there a declaration never decides where a message goes. A new connection (kombu empties its cache)
declares again on its first send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from stalk.embedded.broker import redis_transport


def skip_declared(app: Celery) -> Callable[[], None] | None:
    """Wrap `app.amqp.send_task_message`; returns what restores it, or None where it does not apply."""
    if app.conf.broker_transport != redis_transport.NAME:
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
