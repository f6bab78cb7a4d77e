"""Inside `stalk worker`: task events leave in batches every FLUSH_EVERY seconds, not one message a tick.

Celery's worker buffers task events and publishes the buffer at the next turn of its event loop, so
under load nearly every task costs a couple of broker messages (~2 events each), each one serialized,
wrapped by kombu, published, and decoded again by every receiver. Flushing at most every 50 ms sends
the same events, in order, in a few large messages: the panel repaints at ~10 Hz anyway. Buffered
events are also flushed when the consumer stops (Celery's own shutdown leaves them unsent)."""

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
