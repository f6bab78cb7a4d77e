"""Bypasses kombu's consumer for Celery events on a redis broker: kombu's fanout topic read with redis-py.

The event receiver's fast path (stalk.embedded.events.receiver). Calls kombu's private
`Channel._create_client()` and `Channel._get_publish_topics(exchange, routing_key)`
(kombu/transport/redis.py: the client and the topic names, `keyprefix_fanout` formatted with the db,
that kombu's own publishers use: key prefixes, TLS and credentials stay kombu's); decodes the envelope
kombu's `Channel._put_fanout` publishes (JSON with `body`, `content-type`, `properties.body_encoding`,
`headers.compression`); and does to each event what Celery's `EventReceiver.event_from_message`
(celery/events/receiver.py) does to the fields Stalk reads: timestamps moved into this host's UTC offset,
`local_received`. Sets `retry` on redis-py's pub/sub connection (redis/connection.py) so that a lost
broker reaches the receiver. JSON bodies only. Any other transport keeps Celery's receiver.

Written against kombu 5.7.0, Celery 5.7.0 and redis-py 8.2.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks the private calls, the envelope kombu publishes and Celery's
timestamp adjustment.

What it buys: Celery's EventReceiver reaches each pub/sub message through kombu's poller, virtual-transport
message and consumer layers: ~0.4 ms a message on a 2-core machine, about a tenth of a no-op task's CPU
over the whole stack. Receiver CPU per no-op task 1.3 -> 0.15 ms (bench/RESULTS.md 2026-11-27; measured
together with the worker's and the client's event batching, celery_event_dispatcher and
stalk.embedded.events.sent_batch).

If removed (the receiver's `redis_feed` call dropped): the receiver runs Celery's own EventReceiver on
every broker, as it already does off redis and with `fast=False`: the same events, at the CPU above.
"""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery.utils.time import utcoffset
from kombu.transport.redis import Channel
from redis.backoff import NoBackoff
from redis.retry import Retry

JSON = "application/json"
POLL = 0.5  # s between looks at the stop flag while no event arrives


class NotJson(ValueError):
    """An event message in another serializer (pickle, yaml...): never decoded."""


def decode(data: bytes | str) -> list[dict]:
    """One kombu envelope (as published on a redis fanout topic) -> the event dicts it carries."""
    envelope = json.loads(data)
    if envelope.get("content-type") != JSON:
        raise NotJson(f"event message in {envelope.get('content-type')!r}, only {JSON} is accepted")
    body = envelope["body"]
    if (envelope.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    compression = (envelope.get("headers") or {}).get("compression")
    if compression:
        from kombu.compression import decompress

        body = decompress(body, compression)
    events = json.loads(body)
    return events if isinstance(events, list) else [events]


def localize(event: dict, here: float, now: float) -> dict:
    """What Celery's EventReceiver.event_from_message does to the fields Stalk reads."""
    offset, stamp = event.get("utcoffset"), event.get("timestamp")
    if offset is not None and stamp is not None:
        event["timestamp"] = stamp - (offset - here) * 3600
    event["local_received"] = now
    return event


class RedisFeed:
    """A psubscribed pub/sub connection to the broker's event topic."""

    def __init__(self, client: Any, topics: list[str]) -> None:
        """`client` is the channel's: it and its pool close with the kombu connection."""
        self.topics = topics
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)

    def subscribe(self) -> None:
        self.pubsub.psubscribe(*self.topics)
        # redis-py would reconnect and resubscribe unseen; a lost broker must reach the receiver,
        # whose reconnect runs the catch-up for what was published meanwhile.
        self.pubsub.connection.retry = Retry(NoBackoff(), 0)

    def messages(self, stopped: Callable[[], bool]) -> Iterator[bytes | None]:
        """Each message's data as it arrives; None after each quiet POLL (a chance to stop)."""
        get = self.pubsub.get_message
        while not stopped():
            msg = get(timeout=POLL)
            yield None if msg is None else msg["data"]

    def events(self, data: bytes) -> list[dict]:
        here, now = utcoffset(), time.time()
        return [localize(e, here, now) for e in decode(data) if isinstance(e, dict)]

    def close(self) -> None:
        self.pubsub.close()


def redis_feed(conn: Any, exchange: str) -> RedisFeed | None:
    """A feed for `conn`'s broker if it is redis (kombu's redis channel), else None."""
    channel = conn.default_channel
    if not isinstance(channel, Channel):
        return None
    client = channel._create_client()  # formats keyprefix_fanout with the db, as a publisher's does
    topics = channel._get_publish_topics(exchange, "*")
    return RedisFeed(client, topics)
