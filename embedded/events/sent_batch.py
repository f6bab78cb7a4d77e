"""The task-sent events of Stalk's own client, published in batches by a thread instead of one per send.

Celery publishes a task-sent event right after each task message, on the sender's thread: a second
broker round trip per `send_task`, and one more message for every receiver to decode. Stalk's client
hands Celery this dispatcher instead (send_task_message's `event_dispatcher` option); the events are
published every FLUSH_EVERY seconds as one `task.multi` message, as a worker publishes its task
events. The fold ranks states, so a task-sent arriving after the worker's events changes nothing but
the fields it adds. While the broker is away the events wait (up to MAX_WAITING, oldest dropped: the
store's catch-up still looks up every task this process published)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.events.event import Event, get_exchange
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu import Exchange, Producer

FLUSH_EVERY = 0.05  # s
MAX_WAITING = 100_000  # events kept while the broker is away
RETRY_EVERY = 1.0  # s between publish attempts while the broker is away


class SentEvents:
    """Wraps `app.amqp.send_task_message` so each send passes this as its event dispatcher."""

    def __init__(self, app: Celery, log: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.hostname = anon_nodename()  # what Celery's own dispatcher would say
        self._log = log or (lambda _msg: None)
        self._lock = threading.Lock()
        self._waiting: list[dict] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._producer: Producer | None = None
        self._exchange: Exchange | None = None
        self._send: Callable[..., Any] | None = None
        self._thread = threading.Thread(target=self._loop, name="stalk-sent-events", daemon=True)
        self.published = 0
        self.failed_flushes = 0

    def start(self) -> None:
        self._send = send = self.app.amqp.send_task_message

        def send_task_message(producer: Any, name: str, message: tuple, **options: Any) -> Any:
            options.setdefault("event_dispatcher", self)
            return send(producer, name, message, **options)

        self.app.amqp.send_task_message = send_task_message
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def restart(self) -> None:
        """A new publishing thread after this one died (the stack's thread watch); the events it had not
        published are still waiting."""
        self._thread = threading.Thread(target=self._loop, name="stalk-sent-events", daemon=True)
        self._wake.set()  # the dead one may have taken the wake-up of what waits
        self._thread.start()

    def stop(self) -> None:
        """Restore Celery's sender, then publish what is still waiting."""
        if self._send is not None:
            self.app.amqp.send_task_message = self._send
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._close()

    def publish(self, type: str, fields: dict, producer: Any, blind: bool = False, **_retry: Any) -> None:
        """EventDispatcher.publish's signature, as send_task_message calls it: buffer the event."""
        clock = None if blind else self.app.clock.forward()
        event = Event(type, hostname=self.hostname, utcoffset=utcoffset(), pid=os.getpid(), clock=clock, **fields)
        with self._lock:
            self._waiting.append(event)
        if not self._wake.is_set():
            self._wake.set()

    # -- the publishing thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._stop.wait(FLUSH_EVERY)  # let a burst gather
            self._wake.clear()
            if not self._flush():
                self._stop.wait(RETRY_EVERY)
                self._wake.set()
        self._flush()

    def _flush(self) -> bool:
        """Publish everything waiting as one message; False (events kept) if the broker refused."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        if not batch:
            return True
        try:
            self._publish(batch)
        except Exception as exc:
            if self._producer is not None:
                self._log(f"[stalk] task-sent events wait for the broker ({type(exc).__name__}: {exc})")
            self._close()
            self.failed_flushes += 1
            with self._lock:
                self._waiting = (batch + self._waiting)[-MAX_WAITING:]
            return False
        self.published += len(batch)
        return True

    def _publish(self, batch: list[dict]) -> None:
        if self._producer is None or self._exchange is None:  # set together (the exchange first)
            conn = self.app.connection_for_write()
            conn.ensure_connection(max_retries=1)  # a broker away fails this flush, not blocks it
            exchange: Exchange = get_exchange(conn, name=self.app.conf.event_exchange)
            self._exchange = exchange
            self._producer = Producer(conn, exchange=exchange, serializer="json", auto_declare=False)
        self._producer.publish(batch, routing_key="task.multi", exchange=self._exchange.name,
                               declare=[self._exchange], serializer="json", delivery_mode="transient",
                               headers={"hostname": self.hostname})

    def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.connection.close()
            except Exception:
                pass
