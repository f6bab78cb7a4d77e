"""The evaluation thread: every `interval` s each rule is measured (measures.py); ok -> firing fires it,
firing -> ok resolves it. Each transition is written to the history (history.py) first, then handed to
the webhooks' outbox for the rule's URLs (payloads.py), which delivers it with retries, in order, once.

A rule's state: unknown (not measured yet, and no history), ok or firing. A measurement that fails (the
broker does not answer, the quota is not there) keeps the state and says so in the rule's message.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stalk.embedded.alerts.history import AlertEvent, AlertHistory
from stalk.embedded.alerts.measures import Meter, Reading, Round, describe, meter_for
from stalk.embedded.alerts.payloads import entries_for
from stalk.embedded.config import AlertConfig
from stalk.embedded.safe_text import printable

if TYPE_CHECKING:
    from stalk.embedded.stack import Stack
    from stalk.embedded.webhooks import Webhooks

INTERVAL = 5.0  # s between evaluations (tests set a shorter one before the stack starts)
OK, FIRING, UNKNOWN = "ok", "firing", "unknown"
RESOLVED = "resolved"


@dataclass
class RuleState:
    state: str = UNKNOWN
    since: float | None = None  # when the state last changed
    value: float | None = None
    message: str | None = None


class Alerts:
    """`start()` the thread, `stop()` it; `status()` for the API and an in-process panel; `thread` for the
    thread watch."""

    thread_name = "alerts"

    def __init__(self, stack: Stack, rules: tuple[AlertConfig, ...], history: AlertHistory,
                 webhooks: Webhooks | None, interval: float | None = None) -> None:
        self.stack = stack
        self.rules = rules
        self.history = history
        self.webhooks = webhooks  # the outbox and its delivery thread (None: no rule has a URL)
        self.interval = INTERVAL if interval is None else interval
        self.meters: dict[str, Meter] = {r.name: meter_for(r) for r in rules}
        self.states: dict[str, RuleState] = {r.name: RuleState() for r in rules}
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the states
        self._evaluating = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._listeners: list[Callable[[list[str]], None]] = []
        self._depths = _bounded_depths(stack)
        self._restore()

    # -- life cycle ---------------------------------------------------------------------------

    def _restore(self) -> None:
        """Each rule's last state from the history; what was recorded but never queued is queued now."""
        for name, event in self.history.last_states().items():
            if name in self.states:
                self.states[name] = RuleState(FIRING if event.state == FIRING else OK, event.at, event.value,
                                              event.message)
        for event in self.history.unqueued():
            self._send(event)

    def start(self) -> Alerts:
        self.thread = threading.Thread(target=self._run, name="stalk-alerts", daemon=True)
        self.thread.start()
        return self

    def restart(self) -> None:
        """A new thread (the thread watch's, after one died)."""
        self.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join(timeout=15)
        with self._evaluating:
            self.history.close()

    def wake(self) -> None:
        """Evaluate now."""
        self._wake.set()

    def subscribe(self, listener: Callable[[list[str]], None]) -> Callable[[], None]:
        """`listener(rule names)` on the evaluation thread when rules change state."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.evaluate()
            self._wake.wait(self.interval)

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> list[str]:
        """One pass over every rule; the names that changed state."""
        with self._evaluating:
            if self._stop.is_set():
                return []
            round_ = Round(self.stack, time.time() if now is None else now, self._depths)
            changed = [rule.name for rule in self.rules if self._apply(rule, self._measure(rule, round_), round_.now)]
        if changed:
            for listener in list(self._listeners):
                with contextlib.suppress(Exception):
                    listener(changed)
        return changed

    def _measure(self, rule: AlertConfig, round_: Round) -> Reading:
        try:
            return self.meters[rule.name].read(round_)
        except Exception as exc:  # one rule's bug must not stop the others
            return Reading(None, None, printable(f"not measured: {type(exc).__name__}: {str(exc)[:200]}"))

    def _apply(self, rule: AlertConfig, reading: Reading, now: float) -> bool:
        with self._lock:
            current = self.states[rule.name]
            if reading.breached is None:
                kept = f"state kept: {current.state}" if current.state != UNKNOWN else "state unknown"
                current.message = f"{reading.message} ({kept})"
                return False
            current.value = reading.value
            current.message = reading.message
            new = FIRING if reading.breached else OK
            if new == current.state:
                return False
            before, current.state, current.since = current.state, new, now
        if new == FIRING or before == FIRING:  # unknown -> ok is no news
            event = self.history.record(rule.name, rule.kind, FIRING if new == FIRING else RESOLVED, now,
                                        reading.value, rule.threshold, reading.message)
            self._send(event)
        return True

    def _send(self, event: AlertEvent) -> None:
        rule = next((r for r in self.rules if r.name == event.rule), None)
        webhooks = self.webhooks if rule is not None and rule.urls else None
        if webhooks is not None and rule is not None and webhooks.outbox.enqueue(entries_for(rule, event, describe(rule))):
            webhooks.deliverer.wake()
        self.history.mark_queued(event.id)

    # -- reading ------------------------------------------------------------------------------

    def status(self, limit: int = 100) -> dict[str, Any]:
        """The rules and their states, then the newest `limit` firings and resolutions (the API's shape)."""
        with self._lock:
            rules = [{"name": r.name, "kind": r.kind, "description": describe(r), "state": s.state,
                      "since": s.since, "value": s.value, "threshold": r.threshold, "message": s.message}
                     for r in self.rules for s in (self.states[r.name],)]
        recent = [{"id": e.id, "rule": e.rule, "state": e.state, "at": e.at, "message": e.message}
                  for e in self.history.recent(limit)] if limit > 0 else []
        return {"rules": rules, "recent": recent}

    def firing(self) -> dict[str, bool]:
        with self._lock:
            return {name: s.state == FIRING for name, s in self.states.items()}


def _bounded_depths(stack: Stack) -> Callable[[], tuple[dict[str, int] | None, str | None]]:
    """The broker's queue depths, waited for at most BROKER_TIMEOUT s (a broker that hangs holds no rule)."""
    from stalk.embedded.alerts.measures import BROKER_TIMEOUT
    from stalk.embedded.service.metrics.probe import BoundedCall

    def depths() -> dict[str, int]:
        control = stack.control
        if control is None:
            raise RuntimeError("the control API is not running")
        return control.queue_depths()

    return BoundedCall(depths, BROKER_TIMEOUT, "stalk-alerts-broker")


def start_alerts(stack: Stack) -> Alerts | None:
    """Start a stack's alerts (None when stalk.toml has no [[alerts]]) and put their thread under watch."""
    from stalk.embedded.alerts.history import history_path

    rules = stack.config.alerts
    if not rules:
        return None
    alerts = Alerts(stack, rules, AlertHistory(history_path(stack.paths.state), stack.note), stack.webhooks).start()
    stack.threads.watch(alerts.thread_name, lambda: alerts.thread, alerts.restart)
    return alerts
