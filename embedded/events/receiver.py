"""The receiver thread: Celery events from the broker into the store, reconnecting after broker restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from celery import Celery
from kombu import Connection

from stalk.embedded.patches import RedisFeed, redis_feed

RETRY_MIN, RETRY_MAX = 0.2, 2.0


class EventReceiver:
    """Consumes every event on `app`'s broker and hands each decoded dict to `sink`.

    `connected_since` (monotonic, None while disconnected) lets the store ignore heartbeat gaps
    that were the receiver's, not the workers'."""

    def __init__(self, app: Celery, sink: Callable[[dict], None],
                 log: Callable[[str], None] | None = None,
                 on_connect: Callable[[], None] | None = None, fast: bool = True) -> None:
        self.app = app
        self.fast = fast  # on a redis broker, read events with redis-py (redis_feed) rather than kombu
        self._sink = sink
        self._on_connect = on_connect  # run on its own thread after each (re)connect
        self._log = log or (lambda _msg: None)
        self._stop = threading.Event()
        self._receiver = None
        self._thread: threading.Thread | None = None
        self._catch_up: threading.Thread | None = None  # the last connect's (CatchUp in wiring.py)
        self.connected_since: float | None = None
        self.connections = 0
        self.bad_events = 0

    thread_name = "event receiver"  # for the stack's thread watch (EventStore.threads)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def threads(self) -> dict[str, tuple[Callable[[], threading.Thread | None], Callable[[], None]]]:
        """For the stack's thread watch (EventStore.threads): the receiver, and the catch-up after the last
        (re)connect, which goes on looking up unfinished tasks until the next one."""
        return {self.thread_name: (lambda: self._thread, self.start),
                "catch-up": (lambda: self._catch_up, self._start_catch_up)}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stalk-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stop.is_set():
            try:
                self._consume()
                delay = RETRY_MIN
            except Exception as exc:  # broker down or restarting: retry until stopped
                if self.connected_since is not None:
                    self._log(f"[stalk] event receiver lost the broker ({type(exc).__name__}); reconnecting")
                self.connected_since = None
                self._stop.wait(delay)
                delay = min(RETRY_MAX, delay * 2)

    def _handle(self, event: dict) -> None:
        """A malformed event is skipped (and reported once), never a reason to drop the connection."""
        try:
            self._sink(event)
        except Exception as exc:
            self._bad(event, exc)

    def _consume(self) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            feed = redis_feed(conn, self.app.conf.event_exchange) if self.fast else None
            if feed is not None:
                self._consume_feed(conn, feed)
                return
            receiver = self.app.events.Receiver(conn, handlers={"*": self._handle})
            self._receiver = receiver
            if self._stop.is_set():
                return
            self._start_catch_up()
            for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.5, wakeup=True):
                if self.connected_since is None:
                    self.connected_since = time.monotonic()
                    self.connections += 1
                if self._stop.is_set():
                    break
            self.connected_since = None

    def _consume_feed(self, conn: Connection, feed: RedisFeed) -> None:
        """Does not report a connection before connected_since would: the subscription stands first."""
        try:
            feed.subscribe()
            if self._stop.is_set():
                return
            self.app.control.broadcast("heartbeat", connection=conn)  # workers say who they are now
            self._start_catch_up()
            self.connected_since = time.monotonic()
            self.connections += 1
            for data in feed.messages(self._stop.is_set):
                if data is not None:
                    self._feed_events(feed, data)
        finally:
            self.connected_since = None
            feed.close()

    def _feed_events(self, feed: RedisFeed, data: bytes) -> None:
        try:
            events = feed.events(data)
        except Exception as exc:  # not JSON, not an event: skipped, the connection stays
            self._bad(data, exc)
            return
        for event in events:
            self._handle(event)

    def _start_catch_up(self) -> None:
        if self._on_connect is not None:
            self._catch_up = threading.Thread(target=self._on_connect, name="stalk-events-catch-up", daemon=True)
            self._catch_up.start()

    def _bad(self, what: object, exc: Exception) -> None:
        self.bad_events += 1
        if self.bad_events == 1:
            self._log(f"[stalk] skipped a malformed event {str(what)[:200]}: {type(exc).__name__}: {exc}")
