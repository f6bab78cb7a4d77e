"""Live changes for API clients: what changed since a client's last batch, one batch per frame.

Stack threads call `publish` (a set update under a lock: ingestion never waits on a client). Each client
drains its own pending sets at most every FRAME seconds; a client that falls behind by more than
MAX_PENDING keys on a topic gets `resync` for that topic instead of the keys (it re-reads what it shows).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FRAME = 1 / 30  # seconds: the panel repaints at most this often
MAX_PENDING = 5_000  # keys per topic and client before a resync
TOPICS = ("tasks", "workers", "processes", "logs", "alerts")  # alerts: rule names that changed state


@dataclass
class Subscription:
    topics: frozenset[str]
    pending: dict[str, set[str]] = field(default_factory=dict)
    resync: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    overflows: int = 0

    def add(self, topic: str, keys: Iterable[str]) -> None:
        if topic not in self.topics:
            return
        with self.lock:
            if topic in self.resync:
                return
            bucket = self.pending.setdefault(topic, set())
            bucket.update(keys)
            if len(bucket) > MAX_PENDING:
                self.pending.pop(topic, None)
                self.resync.add(topic)
                self.overflows += 1

    def drain(self) -> dict[str, Any] | None:
        """The batch since the last drain, or None when nothing changed."""
        with self.lock:
            if not self.pending and not self.resync:
                return None
            batch: dict[str, Any] = {topic: sorted(keys) for topic, keys in self.pending.items()}
            if self.resync:
                batch["resync"] = sorted(self.resync)
            self.pending = {}
            self.resync = set()
        return batch


class ChangeHub:
    """Fans stack changes out to the subscribed clients."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, topics: Iterable[str]) -> Subscription:
        sub = Subscription(frozenset(topics) & frozenset(TOPICS))
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, topic: str, keys: Iterable[str]) -> None:
        with self._lock:
            subs = list(self._subs)
        if not subs:
            return
        keys = list(keys)
        for sub in subs:
            sub.add(topic, keys)

    def __len__(self) -> int:
        return len(self._subs)
