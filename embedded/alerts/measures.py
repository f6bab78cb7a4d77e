"""What each kind of rule measures, once per evaluation: a Reading (the value, whether it breaches the
rule, one line saying so), or a problem (the state cannot be told: the rule keeps its state).

Names in the messages (tasks, queues, workers, quotas) come from the broker and the user's app: made
printable here, before the panel, the CLI or a receiver sees them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from stalk.embedded.config import AlertConfig
from stalk.embedded.events.states import FAILURE
from stalk.embedded.safe_text import printable

if TYPE_CHECKING:
    from stalk.embedded.stack import Stack

BROKER_TIMEOUT = 5.0  # s an evaluation waits for the broker's queue depths
LEDGER_TIMEOUT = 1.0  # s it waits for the quota db when a writer holds it


@dataclass(frozen=True)
class Reading:
    value: float | None
    breached: bool | None  # None: not measured (`message` says why); the rule keeps its state
    message: str


def minutes_text(minutes: float) -> str:
    return f"{minutes:g} min"


def describe(rule: AlertConfig) -> str:
    """One human line: what the rule watches and when it fires."""
    subject = printable(rule.subject or "")
    if rule.kind == "task_failures":
        return f"{subject} failed >= {rule.threshold:g} times in {minutes_text(rule.minutes)}"
    if rule.kind == "queue_depth":
        held = f" for {minutes_text(rule.minutes)}" if rule.minutes else ""
        return f"queue {subject} deeper than {rule.threshold:g}{held}"
    if rule.kind == "worker_offline":
        return f"worker {subject} offline for {minutes_text(rule.minutes)}"
    return f"quota {subject or '(the only one)'} used >= {rule.threshold:g}%"


@dataclass
class Round:
    """One evaluation's view of the stack: the broker and the ledger are asked once for every rule."""

    stack: Stack
    now: float
    depths_call: Callable[[], tuple[dict[str, int] | None, str | None]]
    _depths: tuple[dict[str, int] | None, str | None] | None = None
    _quotas: tuple[list[Any], str | None] | None = None

    def depths(self) -> tuple[dict[str, int] | None, str | None]:
        if self._depths is None:
            self._depths = self.depths_call()
        return self._depths

    def quotas(self) -> tuple[list[Any], str | None]:
        if self._quotas is None:
            self._quotas = _read_quotas(self.stack)
        return self._quotas


def _read_quotas(stack: Stack) -> tuple[list[Any], str | None]:
    from stalk.embedded.quota import QuotaError, QuotaLedger

    path = stack.paths.quota_db
    if not path.exists():
        return [], None
    try:
        ledger = QuotaLedger(path, create=False, busy_timeout=LEDGER_TIMEOUT)
        try:
            return ledger.statuses(), None
        finally:
            ledger.close()
    except QuotaError as exc:
        return [], f"quota ledger unreadable: {printable(exc)}"


class Meter:
    """Measures one rule; keeps what it must remember between evaluations."""

    def __init__(self, rule: AlertConfig) -> None:
        self.rule = rule

    def read(self, round_: Round) -> Reading:
        raise NotImplementedError


class TaskFailures(Meter):
    def read(self, round_: Round) -> Reading:
        events = round_.stack.events
        if events is None:
            return Reading(None, None, "the event store is not running")
        rule, glob = self.rule, self.rule.subject or "*"
        since = round_.now - rule.minutes * 60
        names: Counter[str] = Counter(
            rec.name or "?" for rec in events.query(state=FAILURE, limit=None)
            if (rec.finished or rec.updated or 0) >= since and fnmatchcase(rec.name or "", glob))
        count = sum(names.values())
        top = ", ".join(f"{printable(n)} x{k}" for n, k in names.most_common(3))
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        message = (f"{count} failure(s) of {printable(glob)} in the last {minutes_text(rule.minutes)} "
                   f"(fires at {rule.threshold:g})" + (f": {top}{more}" if top else ""))
        return Reading(float(count), count >= rule.threshold, message)


@dataclass
class QueueDepth(Meter):
    rule: AlertConfig
    deep_since: dict[str, float] = field(default_factory=dict)  # queue -> first sample deeper than the threshold

    def read(self, round_: Round) -> Reading:
        depths, problem = round_.depths()
        if depths is None:
            return Reading(None, None, f"broker error: {printable(problem)}")
        rule, glob = self.rule, self.rule.subject or "*"
        matching = {q: n for q, n in depths.items() if fnmatchcase(q, glob)}
        deep = {q: n for q, n in matching.items() if n > rule.threshold}
        self.deep_since = {q: self.deep_since.get(q, round_.now) for q in deep}
        held = [q for q, t in self.deep_since.items() if round_.now - t >= rule.minutes * 60]
        value = float(max(matching.values(), default=0))
        if held:
            worst = max(held, key=lambda q: deep[q])
            message = (f"queue {printable(worst)} holds {deep[worst]} message(s), deeper than {rule.threshold:g} "
                       f"for {minutes_text(rule.minutes)}" + (f" ({len(held) - 1} more queue(s))" if len(held) > 1 else ""))
        elif deep:
            message = f"{len(deep)} queue(s) deeper than {rule.threshold:g}, not for {minutes_text(rule.minutes)} yet"
        else:
            message = f"queue {printable(glob)}: {value:g} message(s) waiting at most"
        return Reading(value, bool(held), message)


@dataclass
class WorkerOffline(Meter):
    rule: AlertConfig
    offline_since: dict[str, float] = field(default_factory=dict)  # hostname -> when it was last heard

    def read(self, round_: Round) -> Reading:
        events = round_.stack.events
        if events is None:
            return Reading(None, None, "the event store is not running")
        glob = self.rule.subject or "*"
        workers = [w for w in events.workers() if fnmatchcase(w.hostname, glob)]
        offline = {w.hostname: w for w in workers if not w.online}
        self.offline_since = {h: self.offline_since.get(h) or _last_heard(w, round_.now) for h, w in offline.items()}
        gone = {h: (round_.now - t) / 60 for h, t in self.offline_since.items()}
        value = max(gone.values(), default=0.0)
        long_gone = sorted((h for h, m in gone.items() if m >= self.rule.minutes), key=lambda h: -gone[h])
        if long_gone:
            more = f" (and {len(long_gone) - 1} more)" if len(long_gone) > 1 else ""
            message = f"worker {printable(long_gone[0])} offline for {value:.1f} min{more}"
        else:
            message = f"{len(workers)} worker(s) matching {printable(glob)}, {len(offline)} offline"
        return Reading(round(value, 3), bool(long_gone), message)


def _last_heard(worker: Any, now: float) -> float:
    beat = worker.last_heartbeat
    return beat if beat is not None and beat <= now else now


class QuotaUse(Meter):
    def read(self, round_: Round) -> Reading:
        statuses, problem = round_.quotas()
        if problem:
            return Reading(None, None, problem)
        name = self.rule.subject
        if name is None:
            if len(statuses) != 1:
                names = ", ".join(printable(s.name) for s in statuses) or "none defined"
                return Reading(None, None, f"the stack has {len(statuses)} quotas ({names}): name one with quota = ...")
            status = statuses[0]
        else:
            status = next((s for s in statuses if s.name == name), None)
            if status is None:
                return Reading(None, None, f"no quota {printable(name)} in the stack's ledger")
        percent = 100.0 if status.limit <= 0 else 100.0 * status.used / status.limit
        message = (f"quota {printable(status.name)}: {status.used} of {status.limit} units used "
                   f"({percent:.0f}%, fires at {self.rule.threshold:g}%)")
        return Reading(round(percent, 2), percent >= self.rule.threshold, message)


METERS: dict[str, Callable[[AlertConfig], Meter]] = {
    "task_failures": TaskFailures, "queue_depth": QueueDepth, "worker_offline": WorkerOffline, "quota": QuotaUse}


def meter_for(rule: AlertConfig) -> Meter:
    return METERS[rule.kind](rule)
