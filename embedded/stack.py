"""Stack: the one object that starts, watches and stops a whole Celery stack (no UI needed)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import Celery

from stalk.embedded.broker.address import PIDFILE
from stalk.embedded.broker.base import BrokerError, BrokerInfo
from stalk.embedded.broker.select import start_broker, stop_broker
from stalk.embedded.celery_app import (
    DEMO_APP,
    client_app,
    configure_app,
    import_task_modules,
    load_app,
    worker_specs,
)
from stalk.embedded.children import beat_argv, child_env, node_name, worker_argv
from stalk.embedded.config import StackConfig, WorkerSpec
from stalk.embedded.events.states import PENDING, REQUEUED_EVENT
from stalk.embedded.journal import PublishJournal
from stalk.embedded.patches import skip_declared
from stalk.embedded.quota import prepare_stack_quotas
from stalk.embedded.requeue import Requeued, Requeuer
from stalk.embedded.safe_files import PRIVATE_UMASK, secure_data_dir
from stalk.embedded.status_file import clear_status, write_status
from stalk.embedded.supervisor import ChildSpec, ProcessInfo, ProcState, Supervisor
from stalk.embedded.supervisor.child import Child
from stalk.embedded.supervisor.liveness import Liveness, ping_probe
from stalk.embedded.supervisor.logs import LogLine, LogRing
from stalk.embedded.supervisor.registry import ChildRegistry, InstanceLock
from stalk.embedded.thread_watch import ThreadWatch

if TYPE_CHECKING:  # imported where they start (start_store, _start_control): annotations only here
    from stalk.embedded.alerts import Alerts
    from stalk.embedded.control import Control
    from stalk.embedded.events import EventStore
    from stalk.embedded.events.sent_batch import SentEvents
    from stalk.embedded.reload_sources import SourceWatch
    from stalk.embedded.service.server import ApiServer
    from stalk.embedded.webhooks import Webhooks

PING_UNANNOUNCED_AFTER = 5.0  # seconds: ping a worker that has not logged "<name> ready." by then
OWN_LOG = "stalk"  # Stack.logs(OWN_LOG): Stalk's own lines about the stack (not a process's output)
EMBEDDED_DROPPED = "not run: the embedded broker's in-memory queue was dropped when Stalk stopped"


class Stack:
    """Broker + workers + beat for one data dir. `with Stack(config) as stack:` starts and stops it."""

    def __init__(self, config: StackConfig, app: Celery | None = None) -> None:
        self.config = config
        self.paths = config.paths
        self.mode = config.resolved_mode()
        self.user_app = app if app is not None else load_app(config.app, config.app_dir)
        # The app's task modules, as a worker imports them: submits are checked against their signatures.
        self.task_modules_problem = import_task_modules(self.user_app)
        # Eager runs the user's tasks in this process; otherwise a client app of our own talks to the broker.
        self.app = self.user_app if self.mode == "eager" else client_app(self.user_app)
        self.worker_specs: tuple[WorkerSpec, ...] = worker_specs(config, self.user_app)
        self.broker: BrokerInfo | None = None
        self._registry = ChildRegistry(self.paths.children_file)
        self.supervisor = Supervisor(config.supervisor, self.paths.logs, self._registry, note=self.note)
        self.stale_killed: list[int] = []
        self._lock = InstanceLock(self.paths.lock_file, self.paths.pid_file)
        self._broker_handle: object | None = None
        self._reloader: threading.Thread | None = None
        self._liveness: Liveness | None = None  # pings ready workers: embedded/supervisor/liveness.py
        self._reload_stop = threading.Event()
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._listeners: list[Callable[[list[ProcessInfo]], None]] = []
        self.threads = ThreadWatch(self.note, on_change=self._threads_changed)  # embedded/thread_watch.py
        self._started = False
        self._launched = False  # every process is registered (start got past _start_children)
        self._saved_conf: dict | None = None
        self.events: EventStore | None = None  # the live task/worker store, set by _start_events
        self.control: Control | None = None  # submit/revoke/inspect, set by _start_control
        self.journal: PublishJournal | None = None  # own redis only: re-publishes what a broker crash lost
        self.requeuer: Requeuer | None = None  # own redis only: a dead worker's messages back in their queues
        self._sent_events: SentEvents | None = None  # not in eager mode
        self._unskip_declared: Callable[[], None] | None = None  # embedded.patches.celery_send_task_message
        self.own_log: LogRing | None = None  # OWN_LOG's lines (`note`), from start
        self._user_umask: int | None = None  # the process's umask before start (the stack's is PRIVATE_UMASK)
        self.api: ApiServer | None = None  # the local API (embedded/service), set by _start_api
        self.webhooks: Webhooks | None = None  # [[webhooks]]' outbox and delivery thread (embedded/webhooks)
        self.alerts: Alerts | None = None  # [[alerts]]' evaluation thread, sending through the webhooks' outbox
        self.started_at: float | None = None
        self.stop_requested = threading.Event()  # the API's POST /stack/stop: whoever runs the stack stops it
        self.detached = threading.Event()  # the API's POST /stack/detach: outlive the terminal that started it
        self.on_detach: Callable[[], None] | None = None  # set by whoever can cut the tie (the stack process)
        self._at_stop: list[Callable[[], None]] = []  # at_stop: run first in stop()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float | None = None) -> Stack:
        """Start everything; with `wait`, return once every worker answers ping (BrokerError if not)."""
        self._user_umask = os.umask(PRIVATE_UMASK)  # what the stack (and its children) write is the user's only
        try:
            notes = secure_data_dir(self.paths)  # UnsafeDataDir: another user could have chosen what is there
            self._lock.acquire()
        except BaseException:
            self._restore_umask()
            raise
        self._started = True
        self.started_at = time.time()
        self.own_log = LogRing(OWN_LOG, self.config.supervisor.log_ring_lines, self.paths.logs / f"{OWN_LOG}.log")
        for line in notes:
            self.note(line)
        try:
            self._start_api()  # first: a taken port fails before anything starts; /health, /stack answer meanwhile
            prepare_stack_quotas(self.user_app, self.paths.quota_db, in_process=self.mode == "eager")
            self.stale_killed = self._registry.clean_stale()
            self.supervisor.start()
            self.broker, self._broker_handle = start_broker(self.config, self.supervisor)
            if self.mode == "eager":  # eager configures the user's own app: undo it at stop
                self._saved_conf = dict(self.app.conf.changes)
            configure_app(self.app, self.broker.broker_url, self.broker.backend_url,
                          eager=self.mode == "eager", visibility_timeout=self.config.broker.visibility_timeout)
            self._unskip_declared = skip_declared(self.app)  # innermost of the sender's wrappers
            self._start_journal()
            self._start_events()
            self.webhooks = _start_webhooks(self)
            self._start_requeuer()
            self._start_control()
            self.alerts = _start_alerts(self)  # reads the store and control
            self._start_children()
            self._start_liveness()
            self._start_reloader()
            self._wire_api()
            self._launched = True
            self._publish_status()
            self._watch_threads()
            if wait and not self.wait_ready(timeout or self.config.supervisor.ready_timeout):
                raise BrokerError(self._not_ready_message())
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> bool:
        return self.supervisor.wait_for(None, timeout)

    def is_ready(self) -> bool:
        """Started, and every supervised process is up."""
        return self._started and self._launched and all(p.state.up for p in self.supervisor.processes())

    def request_stop(self) -> None:
        """Ask whoever runs this stack (`stalk up`, the stack process) to stop it."""
        self.stop_requested.set()

    def detach(self) -> None:
        """Keep running after the terminal (or panel) that started this stack goes away."""
        self.detached.set()
        if self.on_detach is not None:
            self.on_detach()

    def stop(self) -> None:
        """Warm-stop workers and beat, then the broker; release the data dir. Safe to call twice."""
        if not self._started:
            return
        self._started = False
        self._launched = False
        hooks, self._at_stop = self._at_stop, []
        for hook in hooks:  # what runs on the stack (the API's demo load) stops before it
            with contextlib.suppress(Exception):
                hook()
        self._reload_stop.set()
        self.threads.stop()  # the threads below end on purpose now
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.alerts is not None:
            self.alerts.stop()
        if self.webhooks is not None:
            self.webhooks.stop()
        self._status_stop.set()
        if self._liveness is not None:
            self._liveness.stop()
        self._stop_control()
        self._stop_sent_events()
        if self.journal is not None:
            self.journal.stop()
        if self.requeuer is not None:
            self.requeuer.stop()
        if self._unskip_declared is not None:
            self._unskip_declared()
            self._unskip_declared = None
        self.supervisor.shutdown()
        self._drop_embedded_queue()
        self._stop_events()
        clear_status(self.paths.state)
        stop = getattr(self._broker_handle, "stop", None)
        if stop is not None:
            stop()
        stop_broker(self.config, self.broker)
        self._restore_user_conf()
        if self.own_log is not None:
            self.own_log.close()
        self._lock.release()
        self._restore_umask()

    def at_stop(self, hook: Callable[[], None]) -> None:
        """Run `hook` first when the stack stops (something sending through it: the API's demo load)."""
        self._at_stop.append(hook)

    def _restore_umask(self) -> None:
        if self._user_umask is not None:
            os.umask(self._user_umask)
            self._user_umask = None

    def _restore_user_conf(self) -> None:
        """Give an eager stack's user app its settings back, so a later stack in this process (scripts,
        tests) does not inherit task_always_eager."""
        if self._saved_conf is not None:
            self.app.conf.changes.clear()
            self.app.conf.changes.update(self._saved_conf)
            self._saved_conf = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries and actions ------------------------------------------------------------------

    def processes(self) -> list[ProcessInfo]:
        """The supervised processes, then a row per stack thread that died (ThreadWatch.rows)."""
        return [*self.supervisor.processes(), *self.threads.rows()]

    def process(self, name: str) -> ProcessInfo:
        return self.supervisor.child(name).info()

    def logs(self, name: str, since: int = 0) -> list[LogLine]:
        """A process's output, or (`OWN_LOG`) Stalk's own lines about the stack."""
        if name == OWN_LOG:
            return self.own_log.since(since) if self.own_log is not None else []
        return self.supervisor.child(name).logs.since(since)

    def note(self, line: str) -> None:
        """A line of Stalk's own about the stack (`logs(OWN_LOG)`: the Logs screen, `stalk up`'s output)."""
        if self.own_log is not None:
            self.own_log.append(line)

    def subscribe(self, listener: Callable[[list[ProcessInfo]], None]) -> Callable[[], None]:
        """`listener(snapshot)` runs on a stack thread whenever a process (or a watched thread) changes."""
        self._listeners.append(listener)
        unsubscribe = self.supervisor.subscribe(lambda snapshot: listener([*snapshot, *self.threads.rows()]))

        def both() -> None:
            unsubscribe()
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return both

    def _threads_changed(self) -> None:
        snapshot = self.processes()
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # as the supervisor's listeners: a bug must not stop the watch
                listener(snapshot)

    def _watch_threads(self) -> None:
        """The stack's own background threads: one that dies is restarted and shown (thread_watch.py)."""
        if self.events is not None:
            for name, (thread, restart) in self.events.threads().items():
                self.threads.watch(name, thread, restart)
        self.threads.watch("status publisher", lambda: self._status_thread, self._start_status_thread)
        journal = self.journal
        if journal is not None:
            self.threads.watch(journal.thread_name, lambda: journal.thread, journal.start)
        if (requeuer := self.requeuer) is not None:
            self.threads.watch("requeuer", lambda: requeuer.thread, requeuer.restart)
        if (sent := self._sent_events) is not None:
            self.threads.watch("task-sent events", lambda: sent.thread, sent.restart)
        if (liveness := self._liveness) is not None:
            self.threads.watch("liveness", lambda: liveness.thread, liveness.restart)
        self.threads.watch("source reloader", lambda: self._reloader, self._start_reloader)
        self.threads.start()

    def restart_process(self, name: str) -> None:
        self.supervisor.restart_child(name)

    def stop_process(self, name: str) -> None:
        self.supervisor.stop_child(name)

    def start_process(self, name: str) -> None:
        self.supervisor.start_child(name)

    def kill_process(self, name: str) -> None:
        """SIGKILL a child (as a crash would): the supervisor restarts it."""
        self.supervisor.child(name).kill_now()

    # -- internals ----------------------------------------------------------------------------

    def _start_journal(self) -> None:
        """With Stalk's own redis-server, journal publishes and recover them after a broker restart."""
        if self.mode != "redis" or self.broker is None or self.broker.broker_url is None:
            return
        broker_logs = self.supervisor.child("broker").logs
        journal = self.journal = PublishJournal(self.app, self.broker.broker_url, self.broker.backend_url,
                                                log=broker_logs.append)
        seen: dict[str, int] = {}

        def on_change(snapshot: list[ProcessInfo]) -> None:
            for proc in snapshot:  # restarted after a crash (a kill included)
                if proc.role in ("broker", "worker") and proc.state.up and \
                        proc.restarts > seen.get(proc.name, 0):
                    seen[proc.name] = proc.restarts
                    only = None if proc.role == "broker" else self._never_received
                    threading.Thread(target=self._recover_lost, args=(journal, only), name="stalk-journal-recover",
                                     daemon=True).start()

        self.subscribe(on_change)

    def _start_requeuer(self) -> None:
        """With Stalk's own redis, requeue a dead worker's running and prefetched messages at once (see
        embedded/requeue.py); history shows each task REQUEUED with the reason."""
        if self.mode != "redis" or self.broker is None or self.broker.broker_url is None:
            return
        requeuer = self.requeuer = Requeuer(self.app, self.broker.broker_url, self._requeued, self.note).start()

        def on_change(snapshot: list[ProcessInfo]) -> None:
            if any(proc.role in ("worker", "broker") and not proc.state.up for proc in snapshot):
                requeuer.poke()

        self.subscribe(on_change)

    def _requeued(self, done: Requeued) -> None:
        if not done.task_ids:
            return
        reason = f"requeued: worker {done.node} (pid {done.pid}) died holding it"
        child = next((c for c in self.supervisor.children() if c.spec.hostname == done.node), None)
        line = (f"[stalk] requeued {len(done.task_ids)} message(s) {done.node} (pid {done.pid}) held when it "
                f"died: {', '.join(done.task_ids[:5])}{' ...' if len(done.task_ids) > 5 else ''}")
        if child is not None:
            child.logs.append(line)
        else:
            self.note(line)
        if self.events is not None:
            now = time.time()
            self.events.ingest_many([{"type": REQUEUED_EVENT, "uuid": task_id, "timestamp": now,
                                      "hostname": done.node, "reason": reason} for task_id in done.task_ids])

    def _recover_lost(self, journal: PublishJournal, only: Callable[[str], bool] | None) -> None:
        try:
            journal.recover(only)
        except Exception as exc:  # the broker went away again: the next restart retries
            self.supervisor.child("broker").logs.append(f"[stalk] journal recovery failed: {exc}")

    def _never_received(self, task_id: str) -> bool:
        rec = self.events.get(task_id) if self.events is not None else None
        return rec is None or rec.state == PENDING

    def _start_events(self) -> None:
        """Start the event receiver and task store (owned by embedded/events), and batch the client's
        task-sent events (it wraps the journal's sender, so it stops before the journal)."""
        from stalk.embedded.events.sent_batch import SentEvents
        from stalk.embedded.events.wiring import start_store

        self.events = start_store(self)
        if self.mode != "eager":
            sent = self._sent_events = SentEvents(self.app, log=logging.getLogger("stalk.events").warning)
            sent.start()

    def _stop_sent_events(self) -> None:
        if self._sent_events is not None:
            self._sent_events.stop()
            self._sent_events = None

    def _drop_embedded_queue(self) -> None:
        """The embedded broker keeps its queues in memory: what had not finished when it stops never
        will, and history must not show it waiting forever."""
        if self.mode == "embedded" and self.events is not None:
            dropped = self.events.lose_unfinished(EMBEDDED_DROPPED)
            if dropped:
                logging.getLogger("stalk").warning("[stalk] %d unfinished task(s) dropped with the embedded "
                                                   "broker's in-memory queues", dropped)

    def _stop_events(self) -> None:
        """Stop the receiver; flush history."""
        if self.events is not None:
            self.events.stop()

    def _start_control(self) -> None:
        """Create the control facade (owned by embedded/control); it re-broadcasts Stalk's stored
        revokes to every worker that turns ready."""
        from stalk.embedded.control import Control, RevokeStore, revoke_store_path

        control = self.control = Control(self.app, user_app=self.user_app, worker_specs=self.worker_specs,
                                         revokes=RevokeStore(revoke_store_path(self.paths.data_dir)),
                                         beat_schedule=self.paths.beat_schedule, eager=self.mode == "eager",
                                         beat_runs=self.paths.beat_runs)
        control.history = self.paths.history_db
        if self.mode != "eager":  # the API's sends: "not sent" within seconds when the broker is away
            from stalk.embedded.control.preflight import broker_check

            control.preflight = broker_check(self.app)
        if self.task_modules_problem:
            self.note(f"[stalk] {self.task_modules_problem}; their arguments are not checked")
        control.watch_workers(self.subscribe)

    def _stop_control(self) -> None:
        """Release control resources."""
        if self.control is not None:
            self.control.close()

    def _env(self) -> dict[str, str]:
        assert self.broker is not None
        return child_env(self.broker.broker_url, self.broker.backend_url, self.config.broker.visibility_timeout,
                         str(self.paths.data_dir), reliable=self.mode == "redis", task_umask=self._user_umask,
                         broker_pidfile=self._broker_pidfile())

    def _broker_pidfile(self) -> str | None:
        """Stalk's redis-server on TCP: its pidfile, against which every client checks the server."""
        if self.mode == "redis" and self.broker is not None and self.broker.port:
            return str(self.paths.state / PIDFILE)
        return None

    def _start_children(self) -> None:
        if self.mode == "eager":
            return
        for spec in self.worker_specs:
            self.supervisor.add(ChildSpec(
                name=f"worker:{spec.name}", role="worker", argv=worker_argv(self.config.app, spec, self.paths),
                env=self._env(), queues=spec.queues, ready_state=ProcState.READY,
                ready_check=self._pinger(node_name(spec)), hostname=node_name(spec), cwd=self.config.app_dir,
            ))
        if self.config.beat_enabled():
            self.supervisor.add(ChildSpec(
                name="beat", role="beat", argv=beat_argv(self.config.app, self.paths), env=self._env(),
                ready_check=_log_says("beat: Starting"), cwd=self.config.app_dir,
            ))

    def _start_api(self) -> None:
        """The local API (embedded/service) on a 0600 socket in the state dir, and TCP when configured.
        Bound and serving before the broker starts: routes needing the store or control answer 503 until
        `_wire_api`."""
        if not self.config.api.enabled:
            return
        from stalk.embedded.service.server import ApiServer

        self.api = ApiServer(self, self.config.api, self.paths.state).start()

    def _wire_api(self) -> None:
        """The store, control and every process exist now: their changes feed the API's /changes."""
        if self.api is not None:
            self.api.wire()

    def _publish_status(self) -> None:
        """Refresh status.json every second so `stalk status` in another shell sees this stack."""

        changed = threading.Event()
        self.subscribe(lambda _snapshot: changed.set())

        def write() -> None:
            with contextlib.suppress(OSError):
                write_status(self.paths.state, self.broker, self.processes(), self.config.app or DEMO_APP,
                             self.config.import_dir.resolve(),
                             self.api.address() if self.api is not None else None)

        def loop() -> None:
            while not self._status_stop.is_set():
                changed.clear()
                write()
                changed.wait(1.0)

        write()  # before start() returns: a client started right after finds this stack and its API
        self._status_loop = loop
        self._start_status_thread()

    def _start_status_thread(self) -> None:
        self._status_thread = threading.Thread(target=self._status_loop, name="stalk-status", daemon=True)
        self._status_thread.start()

    def _start_liveness(self) -> None:
        """Ready workers that stop answering pings: unresponsive, then restarted (config: [supervisor])."""
        if self.mode == "eager":
            return
        names = {c.spec.name for c in self.supervisor.children()}

        def broker_up() -> bool:
            return "broker" not in names or self.supervisor.child("broker").state.up

        conf = self.config.supervisor
        in_loop = frozenset(f"worker:{spec.name}" for spec in self.worker_specs if spec.pool != "prefork")
        self._liveness = Liveness(self.supervisor, ping_probe(self.app, broker_up), conf.liveness_interval,
                                  conf.unresponsive_restart, never_restart=in_loop).start()

    def _pinger(self, hostname: str) -> Callable[[Child], bool]:
        """Ping once the worker logs that it is ready: a ping sent before its control queue exists is
        lost and costs the whole reply timeout. A worker whose logging hides that line is pinged anyway
        after a few seconds."""
        marker = f"{hostname} ready."

        def ready(child: Child) -> bool:
            started = child.started_at or 0.0
            if not child.said(marker) and time.time() - started < PING_UNANNOUNCED_AFTER:
                return False
            replies = self.app.control.ping(destination=[hostname], timeout=1.0)
            return any(hostname in reply for reply in replies or [])

        return ready

    def _not_ready_message(self) -> str:
        waiting = [p for p in self.supervisor.processes() if not p.state.up]  # not the stack's threads
        names = ", ".join(f"{p.name} ({p.state})" for p in waiting)
        last = ""
        if waiting:
            lines = self.logs(waiting[0].name)
            last = f"; last output of {waiting[0].name}: {lines[-1].text}" if lines else ""
        return f"not ready within {self.config.supervisor.ready_timeout:.0f} s: {names}{last}"

    def _start_reloader(self) -> None:
        if not (self.config.supervisor.reload and self.config.app) or self.mode == "eager":
            return
        from stalk.embedded.reload_sources import SourceWatch

        sources = SourceWatch.for_app(self.config.app)
        if sources is None:
            return
        self._reloader = threading.Thread(target=self._watch_sources, args=(sources,), name="stalk-reload",
                                          daemon=True)
        self._reloader.start()

    def _watch_sources(self, sources: SourceWatch) -> None:
        from watchfiles import watch

        for changes in watch(*sources.dirs, watch_filter=sources, stop_event=self._reload_stop, recursive=False,
                             debounce=400, raise_interrupt=False):
            line = f"[stalk] reloading: {sources.describe({path for _, path in changes})[:200]} changed"
            self.note(line)
            for child in self.supervisor.children():
                if child.spec.role in ("worker", "beat") and child.state is not ProcState.STOPPED:
                    child.logs.append(line)
                    with contextlib.suppress(Exception):
                        self.supervisor.restart_child(child.spec.name)


def _start_webhooks(stack: Stack) -> Webhooks | None:
    from stalk.embedded.alerts import targets_for
    from stalk.embedded.webhooks import start_webhooks

    return start_webhooks(stack, targets_for(stack.config.alerts))  # alerts send through the same outbox


def _start_alerts(stack: Stack) -> Alerts | None:
    from stalk.embedded.alerts import start_alerts

    return start_alerts(stack)


def _log_says(marker: str) -> Callable[[Child], bool]:
    """A readiness probe that waits for `marker` in the child's output (beat has no ping)."""

    def ready(child: Child) -> bool:
        return child.said(marker)

    return ready
