"""Patches Celery's worker event dispatcher: inside `stalk worker`, task events leave in batches every
FLUSH_EVERY seconds, not one message a turn of the event loop.

Overrides, on the `EventDispatcher` (celery/events/dispatcher.py) that Celery's consumer step `Events`
(celery/worker/consumer/events.py) makes at each (re)connect, the attributes `buffer_limit` (24) and
`on_send_buffered` (the consumer's `on_send_event_buffered`, which flushes at the next loop turn), and
calls the consumer's private `_flush_events` (celery/worker/consumer/consumer.py). Relies on `send`
buffering events of the `task` group (`buffer_group`, set by `Events.start` only when the consumer has
a hub) and calling `on_send_buffered` until `buffer_limit`, and on `flush` publishing the buffer as one
`task.multi` message. Installed as a consumer bootstep (`app.steps["consumer"]`) that requires Celery's
`Events` step, by stalk.embedded.children.run_worker.

Written against Celery 5.7.0 and kombu 5.7.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py drives Celery's `Events` step and this one with a stand-in consumer.

What it buys: Celery's worker buffers task events and publishes the buffer at the next turn of its event
loop, so under load nearly every task costs a couple of broker messages (~2 events each), each one
serialized, wrapped by kombu, published, and decoded again by every receiver. Flushing at most every
50 ms sends the same events, in order, in a few large messages (the panel repaints at ~10 Hz anyway):
Stalk's batched events add 0.05 of a PUBLISH per task (bench/RESULTS.md 2026-12-04). Worker CPU per
no-op task 5.9 -> 4.5 ms and receiver CPU 1.3 -> 0.15 ms (commit 4bbd9b7, 2026-11-27, measured together
with kombu_redis_fanout and stalk.embedded.events.sent_batch). Buffered events are also flushed when the
consumer stops (Celery's own shutdown leaves them unsent).

If removed: Celery's per-turn flushing (about two events a message, every one decoded by every
receiver) and its shutdown, which drops the buffered task events.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps
from kombu.common import ignore_errors

FLUSH_EVERY = 0.05  # s
BUFFER_LIMIT = 512  # events: flush at once beyond this (Celery's default is 24)


class BatchTaskEvents(bootsteps.StartStopStep):
    """A consumer step started after Celery's Events step, each time it makes a new dispatcher."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._pending = False
        self._consumer = c

    def start(self, c: Any) -> None:
        dispatcher = c.event_dispatcher
        if dispatcher is None or c.hub is None or dispatcher.on_send_buffered is None:
            return  # no event loop (solo/threads pools buffer nothing): Celery's behaviour stands
        self._pending = False
        dispatcher.buffer_limit = BUFFER_LIMIT
        dispatcher.on_send_buffered = self._buffered

    def _buffered(self) -> None:
        if not self._pending:
            self._pending = True
            self._consumer.hub.call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._pending = False
        self._consumer._flush_events()

    def stop(self, c: Any) -> None:
        """Before Celery's Events step closes the dispatcher; with the broker gone, the events move to
        the outbound buffer that the next dispatcher takes over."""
        if c.event_dispatcher is not None:
            ignore_errors(c, c.event_dispatcher.flush)

    shutdown = stop


def install(app: Any) -> None:
    app.steps["consumer"].add(BatchTaskEvents)
