"""How a Stack gets its webhooks: the outbox in its state dir, fed from the event store's change batches,
emptied by the delivery thread (watched like the stack's other threads)."""

from __future__ import annotations

import json
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from stalk.embedded.config import WebhookConfig
from stalk.embedded.events.records import Changes, TaskRecord
from stalk.embedded.events.states import AGAIN, RECEIVED, RUNNING
from stalk.embedded.webhooks.delivery import Deliverer, Target
from stalk.embedded.webhooks.outbox import Delivery, Entry, Outbox, outbox_path

if TYPE_CHECKING:
    from stalk.embedded.events import EventStore
    from stalk.embedded.stack import Stack

REPEATING = AGAIN | RUNNING | {RECEIVED}  # states a task may reach more than once: one row per attempt


def payload(rec: TaskRecord) -> dict[str, Any]:
    return {
        "event": f"task.{rec.state.lower()}", "task_id": rec.task_id, "name": rec.name, "state": rec.state,
        "args": rec.args, "kwargs": rec.kwargs, "result": rec.result, "exception": rec.exception,
        "traceback": rec.traceback, "worker": rec.worker, "queue": rec.queue, "retries": rec.retries,
        "runtime": rec.runtime, "parent_id": rec.parent_id, "root_id": rec.root_id,
        "timestamps": {"sent": rec.sent, "received": rec.received, "started": rec.started,
                       "finished": rec.finished, "updated": rec.updated},
    }


def wants(hook: WebhookConfig, rec: TaskRecord) -> bool:
    return rec.state in hook.states and any(fnmatchcase(rec.name or "", glob) for glob in hook.tasks)


def entries_for(hooks: tuple[WebhookConfig, ...], records: list[TaskRecord]) -> list[Entry]:
    out: list[Entry] = []
    for rec in records:
        matching = [h for h in hooks if wants(h, rec)]
        if not matching:
            continue
        body = json.dumps(payload(rec), separators=(",", ":"), default=str)
        key = str(rec.retries) if rec.state in REPEATING else ""
        out += [Entry(h.url, rec.task_id, rec.state, key, rec.name, body) for h in matching]
    return out


class Webhooks:
    """The outbox and its delivery thread for one stack; `on_changes` is the store's subscriber."""

    def __init__(self, hooks: tuple[WebhookConfig, ...], outbox: Outbox, store: EventStore,
                 log: Callable[[str], None], targets: tuple[Target, ...] = ()) -> None:
        self.hooks = hooks
        self.outbox = outbox
        self.store = store
        self._log = log
        self.deliverer = Deliverer(outbox, hooks, log, targets)  # targets: other senders' (alerts)
        self._states = frozenset(s for h in hooks for s in h.states)
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> Webhooks:
        if self.hooks:
            self._unsubscribe = self.store.subscribe(self.on_changes)
        self.deliverer.start()
        return self

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.deliverer.stop()
        self.outbox.close()

    def on_changes(self, changes: Changes) -> None:
        """One transaction per change batch, on the store's notifier thread (not the ingesting one)."""
        get = self.store.get
        records = [rec for task_id in changes.tasks if (rec := get(task_id)) is not None
                   and rec.state in self._states]
        if records and self.outbox.enqueue(entries_for(self.hooks, records)):
            self.deliverer.wake()

    def retry(self, delivery_id: int) -> Delivery | None:
        row = self.outbox.retry_now(delivery_id)
        if row is not None and row.acked_at is None:
            self.deliverer.unblock(row.hook)
        return row


def start_webhooks(stack: Stack, targets: tuple[Target, ...] = ()) -> Webhooks | None:
    """Start a stack's webhooks (None when stalk.toml configures none, and no other sender, the alerts,
    gives `targets`) and put their thread under watch."""
    hooks = stack.config.webhooks
    if not (hooks or targets) or stack.events is None:
        return None
    webhooks = Webhooks(hooks, Outbox(outbox_path(stack.paths.state)), stack.events, stack.note, targets).start()
    deliverer = webhooks.deliverer
    stack.threads.watch(deliverer.thread_name, lambda: deliverer.thread, deliverer.start)
    return webhooks
