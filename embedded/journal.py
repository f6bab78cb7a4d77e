"""The publish journal: no accepted submission is lost when Stalk's redis-server or a worker dies.

kombu's Redis transport pops a message (BRPOP) and records it as unacked (HSET) in two steps; a
broker or a worker killed between them loses the message although `send_task` returned its id. Stalk keeps
every message its client publishes until the message is provably safe: it has a result, or it is
still in a queue or in the unacked table. After a broker restart the journal re-publishes the
ones found nowhere, with the same task id (at-least-once, as acks_late already is); after a worker
crashed, only those no worker was heard receiving (a received task was in the unacked table, and one that
finished without storing a result, ignore_result, must not run again).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from stalk.embedded.broker.address import redis_py_url

PRIORITY_SEP = "\x06\x16"  # kombu's default separator for priority sub-queues
PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps above 0
PRUNE_EVERY = 5.0
PRUNE_BATCH = 2000


@dataclass
class Entry:
    name: str
    message: tuple
    options: dict[str, Any]
    queue: str
    published_at: float


class PublishJournal:
    """Wraps a Celery client app's `send_task_message` and re-publishes what a broker crash lost."""

    def __init__(self, app: Celery, broker_url: str, backend_url: str | None, cap: int = 200_000,
                 log: Callable[[str], object] | None = None) -> None:
        self.app = app
        self.cap = cap
        self.republished = 0
        self.republished_ids: list[str] = []  # reported in the broker's log as re-published
        self._broker = redis.Redis.from_url(redis_py_url(broker_url), socket_timeout=5)
        self._backend = redis.Redis.from_url(redis_py_url(backend_url), socket_timeout=5) if backend_url else None
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._log = log or (lambda _msg: None)
        self._send = app.amqp.send_task_message
        app.amqp.send_task_message = self._send_and_record
        self._stop = threading.Event()
        self._thread = threading.Thread()
        self.start()

    thread_name = "publish journal"  # for the stack's thread watch (embedded/thread_watch.py)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        """(Re)start the pruning thread."""
        self._thread = threading.Thread(target=self._prune_loop, name="stalk-journal", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._entries)

    def _send_and_record(self, producer: Any, name: str, message: tuple, **options: Any) -> Any:
        result = self._send(producer, name, message, **options)
        headers = message[0]
        options.pop("event_dispatcher", None)
        queue = options.get("queue")
        queue_name = getattr(queue, "name", queue) or options.get("routing_key") or self.app.conf.task_default_queue
        with self._lock:
            self._entries[headers["id"]] = Entry(name, message, options, str(queue_name), time.time())
            while len(self._entries) > self.cap:
                self._entries.popitem(last=False)
        return result

    def stop(self) -> None:
        self._stop.set()
        self.app.amqp.send_task_message = self._send

    # -- pruning: forget what has a result --------------------------------------------------------

    def _prune_loop(self) -> None:
        while not self._stop.wait(PRUNE_EVERY):
            try:
                self.prune()
            except redis.RedisError:
                pass  # broker restarting: try again next round

    def prune(self) -> None:
        """Drop every entry whose task has stored a result, one MGET per batch of ids. All of them, not
        the oldest batch alone: at more than one batch of sends per round the journal would grow to
        its cap, and long tasks at its head would keep every finished task behind them."""
        if self._backend is None:
            return
        with self._lock:
            ids = list(self._entries)
        for start in range(0, len(ids), PRUNE_BATCH):
            batch = ids[start:start + PRUNE_BATCH]
            stored = self._stored(batch)
            with self._lock:
                for task_id, done in zip(batch, stored, strict=True):
                    if done:
                        self._entries.pop(task_id, None)

    def _stored(self, ids: list[str]) -> list[bool]:
        """For each id, whether its task has stored a result (one MGET on the result backend)."""
        values = self._backend.mget([f"celery-task-meta-{i}" for i in ids])  # type: ignore[union-attr]
        return [value is not None for value in values]

    # -- recovery ---------------------------------------------------------------------------------

    def recover(self, only: Callable[[str], bool] | None = None) -> int:
        """Re-publish every journaled message found in no queue, no unacked table and no result
        (of those `only` holds true for, if given)."""
        self.prune()
        with self._lock:
            entries = {k: v for k, v in self._entries.items() if only is None or only(k)}
        if not entries:
            return 0
        queues = {e.queue for e in entries.values()}
        lost = self._missing(list(entries), queues)
        if lost:  # look again: a worker may have been between its pop and its unacked record
            time.sleep(1.0)
            lost = self._missing(lost, queues)
        for task_id in lost:
            entry = entries[task_id]
            with self.app.producer_or_acquire() as producer:
                self._send(producer, entry.name, entry.message, **entry.options)
        self.republished += len(lost)
        self.republished_ids += lost
        if lost:
            self._log(f"[stalk] re-published {len(lost)} task(s) found in no queue, unacked table or result: "
                      f"{', '.join(lost[:5])}")
        return len(lost)

    def _missing(self, ids: list[str], queues: set[str]) -> list[str]:
        present = self._ids_in_broker(queues)
        lost = [task_id for task_id in ids if task_id not in present]
        if lost and self._backend is not None:
            lost = [i for i, done in zip(lost, self._stored(lost), strict=True) if not done]
        return lost

    def _ids_in_broker(self, queues: set[str]) -> set[str]:
        found: set[str] = set()
        keys = list(queues) + [f"{q}{PRIORITY_SEP}{p}" for q in queues for p in PRIORITY_STEPS]
        for key in keys:
            for raw in self._broker.lrange(key, 0, -1):
                found.update(_message_ids([raw]))
        found.update(_message_ids(self._broker.hvals("unacked"), unacked=True))
        return found


def _message_ids(raws: Iterable[bytes | str], unacked: bool = False) -> set[str]:
    ids = set()
    for raw in raws:
        try:
            data = json.loads(raw)
            if unacked:
                data = data[0]
            ids.add(data["headers"]["id"])
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return ids
