"""StackRuntime: starts the stack off the UI thread and turns its callbacks into app messages.

Everything here runs on worker threads or stack threads and only posts messages; the app owns state.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message_pump import MessagePump

from stalk.embedded import (
    BrokerError,
    ConfigError,
    OutputRoute,
    ProcessInfo,
    Stack,
    StackConfig,
    StackLockedError,
    route_output,
)
from stalk.embedded.broker import broker_problem
from stalk.panel.messages import (
    BrokerChanged,
    BrokerHealth,
    Notice,
    Phase,
    PhaseChanged,
    ProcessesChanged,
    StackAttached,
    TasksChanged,
)

if TYPE_CHECKING:
    from stalk.embedded.service import RemoteStack, StackClient, StackProcess

HEALTH_EVERY = 2.0


@dataclass(frozen=True)
class DemoLoad:
    """`stalk demo --ui`: the demo app's task mix, sent once the stack is ready (embedded.demo.load)."""

    rate: float  # tasks per second
    duration: float | None = None  # then the load stops; the panel stays
    seed: int = 7


@dataclass(frozen=True)
class RemoteSource:
    """The stack as a process of its own, reached through its API (embedded/service): the one running on
    `data_dir` (or `client()`'s: `stalk attach --url`), else, with `launch`, one this panel starts."""

    data_dir: Path
    launch: StackProcess | None = None
    client: Callable[[], StackClient] | None = None


class RemoteLoad:
    """The demo load a stack process sends for this panel (/demo/load): snapshot() and stop() as a
    LoadGenerator's."""

    def __init__(self, client: StackClient) -> None:
        self.client = client

    @classmethod
    def start(cls, client: StackClient, spec: DemoLoad) -> RemoteLoad:
        client.post("/demo/load", {"rate": spec.rate, "duration": spec.duration, "seed": spec.seed})
        return cls(client)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.client.get("/demo/load"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # the stack may be gone already
            self.client.request("DELETE", "/demo/load")


def start_phase(snapshot: list[ProcessInfo]) -> Phase:
    """Progress while processes come up: ready once every supervised process is up."""
    total = len(snapshot)
    done = sum(1 for p in snapshot if p.state.up)
    if total and done == total:
        return Phase("ready", "stack ready", done, total)
    waiting = [p.name for p in snapshot if not p.state.up]
    return Phase("starting", "starting " + ", ".join(waiting[:4]) + ("…" if len(waiting) > 4 else ""),
                 done, total)


class StackRuntime:
    """Owns the bridge between one Stack and the app; `owned` stacks are started and stopped here."""

    def __init__(self, target: MessagePump, config: StackConfig, stack: Stack | None,
                 load: DemoLoad | None = None, source: RemoteSource | None = None) -> None:
        self.target = target
        self.config = config
        self.stack: Any = stack  # a Stack, or a RemoteStack (source)
        self.source = source
        self.owned = stack is None and source is None  # a stack built, started and stopped in this process
        self.launched: StackProcess | None = None  # the stack process this panel started (source.launch)
        self.load_spec = load
        self.load: Any = None  # the running LoadGenerator
        self._unsubscribe: list[Callable[[], Any]] = []
        self._starting = True
        self._launched = stack is not None  # every process is registered: a full snapshot can be ready
        self._phase_lock = threading.Lock()
        self._stop = threading.Event()
        self._route: OutputRoute | None = None
        self._route_lock = threading.Lock()  # what Celery prints or logs here: the stack's own log
        self._early: list[str] = []  # ... before that log exists (the stack not started yet)
        self._early_lock = threading.Lock()

    def post(self, message: Any) -> None:
        self.target.post_message(message)

    # -- start (worker thread) ------------------------------------------------------------------

    def start(self) -> None:
        """Build and start the stack (if we own it), reporting progress; errors become a failed phase."""
        with self._route_lock:  # stop() may already have run (a panel closed while it started)
            if self._route is None and not self._stop.is_set():
                self._route = route_output(self._own_line, loggers=None, set_aside_terminal=True)
        if self.source is not None:
            self._start_remote(self.source)
            return
        self.post(PhaseChanged(Phase("starting", "loading the Celery app")))
        try:
            stack = self.stack or Stack(self.config)
            self.stack = stack
            self.post(StackAttached(stack))
            self._unsubscribe.append(stack.subscribe(self._on_processes))
            if self.owned:
                self.post(PhaseChanged(Phase("starting", f"starting the {stack.mode} broker")))
                stack.start(wait=False)
        except (BrokerError, ConfigError, StackLockedError, OSError) as exc:
            self.post(PhaseChanged(Phase("failed", str(exc))))
            return
        self.post(BrokerChanged(stack.broker))
        self._subscribe_events(stack)
        self._starting = True
        self._launched = True
        snapshot = stack.processes()
        self._on_processes(snapshot)

    def _start_remote(self, source: RemoteSource) -> None:
        """Attach to the stack running on the data dir, or start one as its own process and attach to it."""
        from stalk.embedded.service import ApiError

        self.post(PhaseChanged(Phase("starting", f"looking for a stack on {source.data_dir}")))
        try:
            remote = self._attach(source)
        except (ApiError, ConfigError, OSError) as exc:
            self.post(PhaseChanged(Phase("failed", getattr(exc, "message", None) or str(exc))))
            return
        if self._stop.is_set():
            remote.close()
            return
        self.stack = remote
        self.post(StackAttached(remote))
        self._unsubscribe.append(remote.subscribe(self._on_processes))
        self.post(BrokerChanged(remote.broker))
        self._subscribe_events(remote)
        self._starting = True
        self._launched = True  # the API serves once every process is registered
        self._on_processes(remote.processes())

    def _attach(self, source: RemoteSource) -> RemoteStack:
        from stalk.embedded.service import ApiError, RemoteStack, StackClient

        if source.client is not None:
            return RemoteStack(source.client())
        try:
            return RemoteStack(StackClient.on_data_dir(source.data_dir))
        except ApiError:
            if source.launch is None:
                raise
        launch = self.launched = source.launch
        self.post(PhaseChanged(Phase("starting", f"starting the stack (its output: {launch.log})")))
        launch.start()
        return RemoteStack(launch.connect(stop=self._stop))

    def _own_line(self, line: str) -> None:
        """Any thread: a warning or log line of Celery (or of anything else in this process: the user's app
        in eager mode, the stack's own loggers) goes to the stack's own log, the Logs screen's `stalk`
        source, never to the terminal the panel draws on (embedded/celery_output.py)."""
        stack = self.stack
        with self._early_lock:
            if stack is None or getattr(stack, "own_log", None) is None:
                self._early.append(line)
                return
            lines, self._early = [*self._early, line], []
        for text in lines:
            stack.note(text)

    def _subscribe_events(self, stack: Any) -> None:
        events = getattr(stack, "events", None)
        if events is not None and hasattr(events, "subscribe"):
            self._unsubscribe.append(events.subscribe(lambda changes: self.post(TasksChanged(changes))))

    def _on_processes(self, snapshot: list[ProcessInfo]) -> None:
        """Stack thread: forward the snapshot; while starting, also report progress."""
        self.post(ProcessesChanged(snapshot))
        with self._phase_lock:  # the stack's thread and start()'s own last call may both get here
            if not (self._starting and self.stack is not None and self.stack.broker is not None):
                return
            phase = start_phase(snapshot)
            if not self._launched:  # the broker may be up before the workers are even registered
                phase = Phase("starting", phase.text if phase.kind == "starting" else "starting the workers",
                              phase.done, phase.total)
            elif phase.kind == "ready" or not snapshot:
                self._starting = False
                phase = Phase("ready", "stack ready", phase.done, phase.total)
                self._start_load()
            self.post(PhaseChanged(phase))

    def _start_load(self) -> None:
        spec, stack = self.load_spec, self.stack
        if spec is None or stack is None or self.load is not None or self._stop.is_set():
            return
        if getattr(stack, "remote", False):  # the stack process sends it (POST /demo/load)
            try:
                self.load = RemoteLoad.start(stack.client, spec)
            except Exception as exc:  # not the demo app (409), the stack gone: say so, the panel stays
                self.post(Notice(f"demo load not started: {getattr(exc, 'message', None) or exc}"))
                return
        else:
            from stalk.embedded.demo import LoadGenerator

            self.load = LoadGenerator(stack.app, spec.rate, duration=spec.duration, seed=spec.seed).start()
        until = f" for {spec.duration:g} s" if spec.duration else ""
        self.post(Notice(f"demo load: {spec.rate:g} tasks/s{until}; watch them on Tasks (2)"))

    # -- broker health (worker thread) ----------------------------------------------------------

    def probe_broker(self) -> None:
        """One probe; the app schedules the next after this one ends (never piles up). A stack process
        probes its own broker: the panel opens no broker connection (GET /stack/broker)."""
        stack = self.stack
        if stack is None or stack.broker is None or stack.mode == "eager":
            return
        if getattr(stack, "remote", False):
            self.post(BrokerHealth(remote_problem(stack, self.launched)))
            return
        self.post(BrokerHealth(broker_problem(stack.app)))

    # -- stop -----------------------------------------------------------------------------------

    def detach(self) -> None:
        """Stop forwarding stack callbacks (on exit; test harnesses feed fixed snapshots instead)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def stop(self) -> None:
        self._stop.set()
        if self.load is not None:
            self.load.stop()
        self.detach()
        if self.owned and self.stack is not None:
            self.stack.stop()
        if self.source is not None and self.stack is not None:
            self.stack.close()  # this view only: a stack this panel started stops once the panel is gone
        with self._route_lock:
            if self._route is not None:  # after the stack's stop, which may warn too
                self._route.restore()
                self._route = None


def remote_problem(stack: RemoteStack, launched: StackProcess | None) -> str | None:
    """The broker's health as the stack process sees it; or why the stack itself does not answer."""
    from stalk.embedded.service import ApiError

    if launched is not None and (code := launched.exited()) is not None:
        return f"the stack process ended (exit {code}): {launched.last_words(1)}"
    try:
        return stack.broker_problem()
    except ApiError as exc:
        return f"the stack does not answer: {exc.message}"
