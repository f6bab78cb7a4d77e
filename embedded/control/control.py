"""Control: submit, revoke, inspect and manage a Celery cluster (the stack's, or any broker's)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from celery import Celery
from celery import chain as celery_chain
from celery import group as celery_group
from celery.result import AsyncResult, GroupResult

from stalk.embedded.celery_app import import_task_modules, routed_queues
from stalk.embedded.config import WorkerSpec
from stalk.embedded.control import beat, queues
from stalk.embedded.control.beat_runs import RUN_NOW, BeatRuns
from stalk.embedded.control.cluster import ClusterView
from stalk.embedded.control.inputs import (
    check_count,
    check_name,
    check_rate,
    check_registered,
    check_time_limits,
    check_worker,
    signal_name,
)
from stalk.embedded.control.problems import BadInput, ControlError, Problem, SubmitError, error
from stalk.embedded.control.request import Checked
from stalk.embedded.control.revokes import RevokeEntry, RevokeStore
from stalk.embedded.control.validation import SubmitContext, validate
from stalk.embedded.control.worker_report import WorkerReport, worker_report
from stalk.embedded.events.history import known_ids

log = logging.getLogger("stalk.control")
INSPECT_KINDS = ("active", "reserved", "scheduled", "registered", "stats", "ping", "active_queues",
                 "revoked", "conf")


class Control:
    """One facade over Celery's control API plus Stalk's persistent revokes. Thread-safe."""

    def __init__(self, app: Celery, *, user_app: Celery | None = None, worker_specs: Iterable[WorkerSpec] = (),
                 revokes: RevokeStore | None = None, beat_schedule: Path | None = None, eager: bool = False,
                 visibility_timeout: int | None = None, view: ClusterView | None = None,
                 beat_runs: Path | None = None) -> None:
        self.app = app
        self.user_app = user_app or app
        # Tasks listed in include/imports or autodiscovered, as a worker imports them: their signatures
        # check every submit (imported once per process; a failure leaves those tasks unchecked).
        import_task_modules(self.user_app)
        self.eager = eager
        self.worker_specs = tuple(worker_specs)
        self.revokes = revokes
        self.beat_schedule = beat_schedule
        self.beat_runs = BeatRuns(beat_runs) if beat_runs is not None else None  # what beat really sent
        self.view = view or ClusterView(app, self.user_app, self.worker_specs, eager=eager)
        self.history: Path | None = None  # the stack's task history db (unknown_task_ids reads it)
        # The stack's: raises ControlError unless the broker answers now (preflight.broker_check); the API's
        # sends check first, so a stopped broker is "not sent" within seconds and nothing goes out later.
        # In-process callers keep the publish journal's behaviour (a send during a broker restart is kept).
        self.preflight: Callable[[], None] | None = None
        self.visibility_timeout = visibility_timeout if visibility_timeout is not None else self._visibility()
        self._groups: dict[str, GroupResult] = {}
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    def _visibility(self) -> int | None:
        if self.eager or not queues.is_redis(self.app):
            return None
        options = self.app.conf.broker_transport_options or {}
        return int(options.get("visibility_timeout", 3600))

    # -- submit -------------------------------------------------------------------------------

    def context(self) -> SubmitContext:
        return SubmitContext(tasks=self.view.tasks(), queues=self.view.queues(),
                             visibility_timeout=self.visibility_timeout,
                             revoked=frozenset(self.revoked()), route=self._route,
                             arguments=self._argument_check)

    def _argument_check_after_result(self, name: str) -> Callable[..., Any] | None:
        check = self._argument_check(name)
        return None if check is None else (lambda *args, **kwargs: check(None, *args, **kwargs))

    def _argument_check(self, name: str) -> Callable[..., Any] | None:
        """The app's own signature check for `name` (tasks this process can import), else None."""
        return getattr(self.user_app.tasks.get(name), "__header__", None)

    def _route(self, name: str) -> str | None:
        return None if self.eager else self.view.route(name)

    def validate_submit(self, request: Any) -> list[Problem]:
        """Every problem with `request`, nothing sent. Never raises."""
        try:
            return validate(request, self.context())[0]
        except Exception as exc:
            return [error(None, f"request: cannot validate: {type(exc).__name__}: {exc}")]

    def check(self, request: Any, force: bool = False, ctx: SubmitContext | None = None) -> Checked:
        """The validated request, or SubmitError (errors always; warnings unless `force`)."""
        problems, checked = validate(request, ctx or self.context())
        blocking = [p for p in problems if p.severity == "error" or not force]
        if blocking or checked is None:
            raise SubmitError(blocking or problems)
        return checked

    def ensure_broker(self) -> None:
        """ControlError ("broker ... unreachable") unless the broker answers now (no preflight: no check)."""
        if self.preflight is not None and not self.eager:
            self.preflight()

    def submit(self, request: Any, force: bool = False) -> AsyncResult:
        """Send one task by name (apply_async in eager mode). Raises SubmitError; nothing sent then."""
        return self.send(self.check(request, force))

    def send(self, checked: Checked) -> AsyncResult:
        """Send a request that passed check()."""
        if self.eager:
            return self.user_app.tasks[checked.name].apply_async(checked.args, checked.kwargs, **checked.options)
        return self._send(lambda: self.app.send_task(checked.name, checked.args, checked.kwargs,
                                                     **checked.options))

    def _send(self, send: Callable[[], Any]) -> Any:
        try:
            return send()
        except SubmitError:
            raise
        except Exception as exc:  # broker unreachable after kombu's (or the result backend's) retries
            reason = " ".join(str(exc).split())  # one line: the result backend's message spans two
            raise SubmitError([error(None, f"not sent: broker unreachable: {reason}")]) from None

    def _signatures(self, requests: Iterable[Any], force: bool, chained: bool = False) -> list[Any]:
        ctx = self.context()
        # In a chain every step after the first gets the previous result as its first argument.
        later = dataclasses.replace(ctx, arguments=self._argument_check_after_result) if chained else ctx
        sigs, problems = [], []
        for i, request in enumerate(requests, 1):
            try:
                c = self.check(request, force, later if i > 1 else ctx)
            except SubmitError as exc:
                problems += [Problem(p.severity, f"step {i}: {p.message}", p.field) for p in exc.problems]
                continue
            sigs.append(self.app.signature(c.name, c.args, c.kwargs, **c.options))
        if problems or not sigs:
            raise SubmitError(problems or [error(None, "canvas: no tasks given")])
        return sigs

    def chain(self, requests: Iterable[Any], force: bool = False) -> AsyncResult:
        """Run the tasks one after another, each result passed as the next one's first argument."""
        sigs = self._signatures(requests, force, chained=True)
        return self._send(lambda: celery_chain(*sigs).apply_async())

    def group(self, requests: Iterable[Any], force: bool = False) -> GroupResult:
        """Run the tasks in parallel; the group is saved so group_progress() works from anywhere."""
        sigs = self._signatures(requests, force)
        result = self._send(lambda: celery_group(sigs).apply_async())
        with contextlib.suppress(Exception):
            result.save()
        with self._lock:
            self._groups[result.id] = result
        return result

    def group_progress(self, group_id: str) -> tuple[int, int]:
        """(done, total): how many of the group's tasks have finished (any final state)."""
        with self._lock:
            result = self._groups.get(group_id)
        if result is None:
            result = GroupResult.restore(group_id, app=self.app)
        if result is None:
            raise ControlError(f"group {group_id}: unknown (not saved in the result backend)")
        return sum(1 for r in result.results if r.ready()), len(result.results)

    # -- revoke -------------------------------------------------------------------------------

    def revoke(self, task_id: str, terminate: bool = False, signal: str = "SIGTERM") -> None:
        self.revoke_many([task_id], terminate, signal)

    def revoke_many(self, task_ids: Iterable[str], terminate: bool = False, signal: str = "SIGTERM") -> None:
        """Revoke (and with `terminate`, kill the running task with `signal`); kept in Stalk's store
        so workers that are down now, or restart later, still discard them."""
        ids = [str(t).strip() for t in task_ids if str(t).strip()]
        if not ids:
            raise ControlError("revoke: no task id given")
        sig = signal_name(signal)
        stored = False
        if self.revokes is not None:
            with contextlib.suppress(OSError):  # an unwritable data dir must not block the broadcast
                self.revokes.add(ids, terminate, sig)
                stored = True
        if self.eager:
            return
        try:
            self.app.control.revoke(ids, terminate=terminate, signal=sig)
        except Exception as exc:
            if not stored:
                raise ControlError(f"revoke: broker unreachable: {exc}") from None
            # stored: re-broadcast when a worker comes back online

    def revoked(self) -> list[str]:
        return self.revokes.ids() if self.revokes is not None else []

    def unknown_task_ids(self, task_ids: Iterable[str], timeout: float = 1.0) -> list[str]:
        """The ids nothing here knows, so that revoking them is most likely a typo: not in Stalk's revoke
        store or task history, no result in the backend, in no queue, held by no worker (cheapest checks
        first, each only for the ids still unknown). [] when that cannot be told cheaply: the queues of
        an AMQP broker (read only by taking their messages), or more messages waiting than
        queues.QUEUE_SCAN_LIMIT."""
        stored = set(self.revoked())
        left = [t for t in dict.fromkeys(task_ids) if t not in stored]
        if left and self.history is not None:
            seen = known_ids(self.history, left)
            left = [t for t in left if t not in seen]
        left = [t for t in left if not self._has_result(t)]
        if not left or self.eager:
            return left
        try:
            queued = queues.queued_ids(self.app, self.known_queues(), left)
            if queued is None:
                return []
            left = [t for t in left if t not in queued]
            if left:
                replies = self.app.control.inspect(timeout=timeout, limit=self.view.expected or None) \
                    .query_task(*left) or {}
                held = {t for reply in replies.values() if isinstance(reply, dict) for t in reply}
                left = [t for t in left if t not in held]
        except Exception as exc:
            raise ControlError(f"revoke: broker unreachable: {exc}") from None
        return left

    def _has_result(self, task_id: str) -> bool:
        try:
            return self.app.AsyncResult(task_id).state != "PENDING"
        except Exception:  # no result backend, or it does not answer: it cannot tell
            return False

    def revoke_entry(self, task_id: str) -> RevokeEntry | None:
        """When and how `task_id` was revoked through Stalk (None if it was not)."""
        return self.revokes.entry(task_id) if self.revokes is not None else None

    def reapply_revokes(self, destination: list[str] | None = None) -> int:
        """Broadcast every stored revoke again (to `destination` workers, or all)."""
        if self.revokes is None or self.eager:
            return 0
        entries = self.revokes.entries()
        for terminate in (False, True):
            for sig in {e.signal for e in entries if e.terminate == terminate}:
                ids = [e.task_id for e in entries if e.terminate == terminate and e.signal == sig]
                self.app.control.revoke(ids, terminate=terminate, signal=sig, destination=destination)
        return len(entries)

    def watch_workers(self, subscribe: Callable[[Callable[[list[Any]], None]], Callable[[], None]]) -> None:
        """Re-broadcast stored revokes to each worker that turns ready (started or back online)."""
        ready: set[str] = set()

        def on_change(snapshot: list[Any]) -> None:
            now_ready = {p.hostname for p in snapshot
                         if p.role == "worker" and p.hostname and str(p.state) == "ready"}
            fresh = sorted(now_ready - ready)
            self.view.expected = len(now_ready)
            ready.clear()
            ready.update(now_ready)
            if fresh and self.revoked():
                threading.Thread(target=self._reapply_quietly, args=(fresh,), name="stalk-revokes",
                                 daemon=True).start()

        self._unsubscribe = subscribe(on_change)

    def _reapply_quietly(self, destination: list[str]) -> None:
        with contextlib.suppress(Exception):
            self.reapply_revokes(destination)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- inspect and remote control -----------------------------------------------------------

    def inspect(self, kind: str, destination: str | list[str] | None = None, timeout: float = 1.0) -> dict:
        if kind not in INSPECT_KINDS:
            raise ControlError(f"inspect: unknown kind {kind!r}; one of {', '.join(INSPECT_KINDS)}")
        if self.eager:
            return {}
        dest = [destination] if isinstance(destination, str) else destination
        try:
            return self.view.broadcast(kind, dest, timeout)
        except Exception as exc:
            raise ControlError(f"inspect {kind}: broker unreachable: {exc}") from None

    def worker_report(self, hostname: str, timeout: float = 1.0) -> WorkerReport:
        """Everything `hostname` says about itself: pool, broker, queues, the tasks it holds, processed
        counts, resource usage (answered=False when it does not answer within `timeout`)."""
        if self.eager:
            return WorkerReport(hostname, answered=False)
        return worker_report(hostname, lambda kind: self.inspect(kind, hostname, timeout))

    def registered_tasks(self, refresh: bool = False) -> set[str]:
        if refresh:
            self.view.invalidate()
        return set(self.view.tasks() or ())

    def require_task(self, name: str) -> str:
        """`name` when some worker registers it (or none could say); BadInput otherwise."""
        return check_registered(name, self.view.tasks())

    def require_worker(self, hostname: str, timeout: float = 1.0) -> str:
        """`hostname` when that worker answers a ping; BadInput naming the workers that do otherwise."""
        host = check_name("worker", hostname)
        if self.eager:
            return host
        try:
            if host in self.view.broadcast("ping", [host], timeout):
                return host
            answering = self.view.broadcast("ping", None, timeout)
        except Exception as exc:
            raise ControlError(f"ping {host}: broker unreachable: {exc}") from None
        return check_worker(host, answering)

    def _command(self, what: str, fn: Callable[..., Any], hostname: str | None, **kwargs: Any) -> list:
        dest = [hostname] if hostname else None
        try:
            limit = len(dest) if dest else (self.view.expected or None)
            replies = fn(destination=dest, reply=True, timeout=2.0, limit=limit, **kwargs) or []
        except Exception as exc:
            raise ControlError(f"{what}: broker unreachable: {exc}") from None
        if hostname and not replies:
            raise ControlError(f"{what}: worker {hostname} did not answer")
        for reply in replies:
            for host, answer in reply.items():
                if isinstance(answer, dict) and "error" in answer:
                    raise ControlError(f"{what} on {host}: {answer['error']}")
        return replies

    def pool_grow(self, hostname: str, n: int = 1) -> list:
        return self._command("pool grow", self.app.control.pool_grow, hostname, n=check_count("n", n))

    def pool_shrink(self, hostname: str, n: int = 1) -> list:
        return self._command("pool shrink", self.app.control.pool_shrink, hostname, n=check_count("n", n))

    def autoscale(self, hostname: str, max: int, min: int) -> list:  # noqa: A002 - the contract's names
        if check_count("max", max) < check_count("min", min, minimum=0):
            raise BadInput(f"autoscale: max ({max}) must be >= min ({min})")
        return self._command("autoscale", self.app.control.autoscale, hostname, max=max, min=min)

    def rate_limit(self, task_name: str, rate: str | int | None, destination: str | None = None) -> list:
        """`rate` like "10/m", "2/s", 100 (per second); None or "0" removes the limit. BadInput (nothing
        sent) for a rate Celery would refuse."""
        checked = check_rate(rate if rate not in (None, "") else "0")
        return self._command("rate limit", self.app.control.rate_limit, destination,
                             task_name=check_name("task", task_name), rate_limit=checked)

    def time_limit(self, task_name: str, soft: float | str | None = None, hard: float | str | None = None,
                   destination: str | None = None) -> list:
        """Celery sets both limits: one left out (None) or 0 removes that limit. BadInput (nothing sent)
        for neither, a negative or non-finite one, or a soft limit above the hard one."""
        soft, hard = check_time_limits(soft, hard)
        return self._command("time limit", self.app.control.time_limit, destination,
                             task_name=check_name("task", task_name), soft=soft, hard=hard)

    def shutdown(self, hostname: str) -> list:
        """Warm-shutdown one worker (a supervised one is started again by the stack)."""
        if not hostname:
            raise ControlError("shutdown: name the worker (hostname); refusing to stop every worker")
        try:
            self.app.control.shutdown(destination=[hostname])
        except Exception as exc:
            raise ControlError(f"shutdown: broker unreachable: {exc}") from None
        return []

    # -- queues -------------------------------------------------------------------------------

    def known_queues(self) -> list[str]:
        names = [q for spec in self.worker_specs for q in spec.queues]
        names += routed_queues(self.user_app)
        names += sorted(self.view.queues() or ())
        return list(dict.fromkeys(names))

    def queue_depths(self) -> dict[str, int]:
        if self.eager:
            return {}
        return queues.queue_depths(self.app, self.known_queues())

    def purge(self, queue: str, by: str | None = None) -> int:
        """Delete every message waiting in `queue`; how many. The tasks they held turn PURGED in the
        stack's event store (and history), with a reason naming the queue, the time and who: `by` (what
        asked, e.g. "stalk queues --purge") and this user@host."""
        queue = check_name("queue", queue)
        if self.eager:
            return 0
        known = self.known_queues()
        if not queues.queue_exists(self.app, queue, known):
            raise BadInput(f"queue {queue!r}: no such queue (unknown to the broker, the app's routes and the "
                           f"workers; queues: {', '.join(sorted(known)) or 'none'})")
        purged = queues.purge_messages(self.app, queue)
        queues.announce_purge(self.app, purged, queues.purger(by))
        return purged.count

    # -- beat ---------------------------------------------------------------------------------

    def beat_entries(self) -> list[beat.BeatEntry]:
        return beat.beat_entries(self.user_app, self.beat_schedule, self.beat_runs, client=self.app)

    def run_beat_entry(self, name: str) -> AsyncResult:
        """Send a beat entry now, with its args, kwargs and options (beat's own schedule is untouched);
        the send counts as one of the entry's runs."""
        entry = beat.find_entry(self.user_app, name, self.beat_schedule, client=self.app)
        result = self._send_entry(entry.spec)
        if self.beat_runs is not None:
            try:
                self.beat_runs.sent(name, str(entry.spec["task"]), result.id, seed=entry.runs, source=RUN_NOW)
            except Exception as exc:  # sent all the same: only its count is missing
                log.warning("[stalk] run now of %s sent but not counted: %s: %s", name, type(exc).__name__, exc)
        return result

    def _send_entry(self, spec: dict[str, Any]) -> AsyncResult:
        options = dict(spec.get("options") or {})
        request = {"name": spec["task"], "args": list(spec.get("args") or ()),
                   "kwargs": dict(spec.get("kwargs") or {})}
        for key in ("queue", "priority", "expires"):
            if options.get(key) is not None:
                request[key] = options.pop(key)
        checked = self.check(request, force=True)
        extra = options  # anything else beat would pass to apply_async (exchange, routing_key, ...)
        if self.eager:
            return self.user_app.tasks[checked.name].apply_async(checked.args, checked.kwargs,
                                                                 **checked.options, **extra)
        return self._send(lambda: self.app.send_task(checked.name, checked.args, checked.kwargs,
                                                     **checked.options, **extra))

