"""ChangeFeed: one thread per attached client reading the stack's change stream and calling listeners
per topic; reconnects (with a resync of every topic) when the stream breaks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from stalk.embedded.service.client import ApiError, StackClient

Listener = Callable[[dict[str, Any]], None]
RECONNECT_EVERY = 1.0  # seconds


class ChangeFeed:
    """`listen(topic, fn)`: fn(batch) for every batch naming `topic` (or resyncing it); started lazily."""

    def __init__(self, client: StackClient) -> None:
        self.client = client
        self._listeners: dict[str, list[Listener]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.problem: str | None = None  # why the stream is down, while it is

    def listen(self, topic: str, fn: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.setdefault(topic, []).append(fn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stalk-api-feed", daemon=True)
                self._thread.start()

        def unlisten() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.get(topic, []).remove(fn)

        return unlisten

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                for batch in self.client.changes():
                    if self._stop.is_set():
                        return
                    if not batch:  # the hello: connected (again)
                        self.connected.set()
                        self.problem = None
                        if not first:
                            self._dispatch({"resync": list(self._topics())})
                        first = False
                        continue
                    self._dispatch(batch)
            except ApiError as exc:
                self.problem = exc.message
            self.connected.clear()
            self._stop.wait(RECONNECT_EVERY)

    def _topics(self) -> list[str]:
        with self._lock:
            return [t for t, fns in self._listeners.items() if fns]

    def _dispatch(self, batch: dict[str, Any]) -> None:
        resync = set(batch.get("resync", ()))
        with self._lock:
            targets = [(t, list(fns)) for t, fns in self._listeners.items() if t in batch or t in resync]
        for _topic, fns in targets:
            for fn in fns:
                with contextlib.suppress(Exception):  # a listener's bug must not end the feed
                    fn(batch)
