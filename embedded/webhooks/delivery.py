"""The delivery thread: POSTs the outbox's due rows, oldest first, and marks them.

A receiver that is down (no connection, a timeout, 5xx, 408, 429) blocks its hook for a back-off that
doubles per failure up to the hook's `backoff_max`; nothing else of that hook is tried meanwhile, so a
burst queued while it was down costs one try per back-off, not one per row. Any other answer (a 4xx: the
receiver refuses this notification) backs off that row alone; its task's later rows wait behind it.
Each `hook` key of the outbox has its Target: a [[webhooks]] URL, or an [[alerts]] rule's URL (alerts.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from stalk.embedded.config import WebhookConfig
from stalk.embedded.webhooks.outbox import Delivery, Outbox

BACKOFF_INITIAL = 0.5  # s: the first wait after a failure; doubles per failure up to the hook's backoff_max
IDLE_WAIT = 0.5  # s: the longest sleep with nothing due (an enqueue wakes the thread at once)
PRUNE_EVERY = 300.0  # s
SIGNATURE_HEADER = "X-Stalk-Signature"
DELIVERY_HEADER = "X-Stalk-Delivery"
EVENT_HEADER = "X-Stalk-Event"
TRANSIENT = frozenset({408, 425, 429})


def backoff(failures: int, cap: float) -> float:
    return min(cap, BACKOFF_INITIAL * 2 ** max(0, min(failures - 1, 30)))


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Target:
    """Where the outbox rows of one `hook` key go: a [[webhooks]] URL (its key), or an alert rule's URL."""

    key: str  # the outbox's hook column
    url: str
    secret: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    backoff_max: float = 300.0
    event: str = "task"  # X-Stalk-Event: <event>.<state>
    raw: bool = False  # the payload as enqueued, no delivery_id added (a Slack message)


def target_of(hook: WebhookConfig) -> Target:
    return Target(hook.url, hook.url, hook.secret, hook.timeout, hook.backoff_max)


def body_of(row: Delivery, raw: bool = False) -> bytes:
    if raw:
        return row.payload.encode()
    payload = json.loads(row.payload)
    payload["delivery_id"] = row.id
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class HookState:
    failures: int = 0
    blocked_until: float = 0.0


class Deliverer:
    """`start()` the thread, `wake()` it after an enqueue, `stop()` it; `thread` for the thread watch."""

    thread_name = "webhook delivery"

    def __init__(self, outbox: Outbox, hooks: tuple[WebhookConfig, ...], log: Callable[[str], None],
                 targets: tuple[Target, ...] = ()) -> None:
        self.outbox = outbox
        self.hooks = {t.key: t for t in (*map(target_of, hooks), *targets)}
        self._log = log
        self._states = {url: HookState() for url in self.hooks}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._clients: dict[str, httpx.Client] = {}
        self.thread: threading.Thread | None = None
        self._pruned = 0.0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="stalk-webhooks", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join(timeout=15)
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def wake(self) -> None:
        self._wake.set()

    def unblock(self, hook: str) -> None:
        """Retry now: the hook's back-off is forgotten."""
        if hook in self._states:
            self._states[hook].blocked_until = 0.0
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            sent = self.pass_once()
            if time.monotonic() - self._pruned > PRUNE_EVERY:
                self._pruned = time.monotonic()
                self.outbox.prune()
            if not sent:
                self._wake.wait(IDLE_WAIT)

    def pass_once(self) -> int:
        """Send what is due now, hook by hook; how many were tried. Rows of a hook no longer configured
        stay in the outbox; a blocked hook waits out its back-off."""
        tried = 0
        for url, hook in self.hooks.items():
            state = self._states[url]
            if state.blocked_until > time.monotonic():
                continue
            for row in self.outbox.due(url, time.time()):
                if self._stop.is_set() or state.blocked_until > time.monotonic():
                    break
                tried += 1
                self._send(hook, state, row)
        return tried

    def _send(self, hook: Target, state: HookState, row: Delivery) -> None:
        body = body_of(row, hook.raw)
        headers = {"Content-Type": "application/json", "User-Agent": "stalk-webhooks",
                   DELIVERY_HEADER: str(row.id), EVENT_HEADER: f"{hook.event}.{row.state.lower()}"}
        if hook.secret:
            headers[SIGNATURE_HEADER] = signature(hook.secret, body)
        try:
            response = self._client(hook).post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._down(hook, state, row, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        code = response.status_code
        if 200 <= code < 300:
            self.outbox.acknowledge(row.id, code)
            state.failures = 0
        elif code >= 500 or code in TRANSIENT:
            self._down(hook, state, row, code, f"HTTP {code}")
        else:
            wait = backoff(row.attempts + 1, hook.backoff_max)
            self.outbox.failed(row.id, code, f"HTTP {code}: refused by the receiver", time.time() + wait)

    def _down(self, hook: Target, state: HookState, row: Delivery, code: int | None, error: str) -> None:
        state.failures += 1
        wait = backoff(state.failures, hook.backoff_max)
        state.blocked_until = time.monotonic() + wait
        self.outbox.failed(row.id, code, error, time.time() + wait)
        if state.failures in (1, 10) or state.failures % 100 == 0:
            where = f"webhook {hook.url}" if hook.event == "task" else hook.key  # alert:<rule>:<url>
            self._log(f"[stalk] {where}: {error} ({state.failures} failure(s) in a row); "
                      f"retrying in {wait:.1f} s")

    def _client(self, hook: Target) -> httpx.Client:
        client = self._clients.get(hook.key)
        if client is None:
            client = self._clients[hook.key] = httpx.Client(timeout=hook.timeout, follow_redirects=False)
        return client
