"""The supervisor thread: spawns children, restarts crashes with backoff, samples CPU/RSS."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from stalk.embedded.config import SupervisorConfig
from stalk.embedded.supervisor.child import Child, ChildSpec, ProcessInfo
from stalk.embedded.supervisor.logs import LogRing
from stalk.embedded.supervisor.registry import ChildRegistry
from stalk.embedded.supervisor.states import ProcState

Listener = Callable[[list[ProcessInfo]], None]
LOGGER = logging.getLogger(__name__)

STABLE_AFTER = 30.0  # seconds up before a crash streak is forgotten
SAMPLE_EVERY = 1.0
NOTE_AGAIN_AFTER = 60.0  # seconds: the same failure in the supervisor's loop is noted at most this often


class Supervisor:
    """Owns every child. All spawns happen on its one long-lived thread (PDEATHSIG is per thread)."""

    def __init__(self, config: SupervisorConfig, log_dir: Path, registry: ChildRegistry | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        """`note(line)` records the supervisor's own failures (the stack's log); never stderr."""
        self.config = config
        self.log_dir = log_dir
        self.registry = registry
        self._children: dict[str, Child] = {}
        self._commands: queue.Queue[tuple[Callable[[], object], Future]] = queue.Queue()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stalk-supervisor", daemon=True)
        self._last_sample = 0.0
        self._started = False
        self._note = note or LOGGER.debug
        self._noted: dict[str, float] = {}  # failure line -> when it was last noted
        self.died: str | None = None  # why the thread ended, had it ended on its own

    # -- public API (any thread) --------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def add(self, spec: ChildSpec, start: bool = True) -> Child:
        """Register `spec` and (by default) spawn it; returns once spawned or failed."""
        logs = LogRing(spec.name, self.config.log_ring_lines, self.log_dir / f"{spec.name.replace(':', '-')}.log")
        child = Child(spec, logs)
        self._children[spec.name] = child
        if start:
            self.call(lambda: self._spawn(child))
        return child

    def child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no process named {name!r}; known: {', '.join(self._children)}") from None

    def children(self) -> list[Child]:
        return list(self._children.values())

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def processes(self) -> list[ProcessInfo]:
        infos = [c.info() for c in self._children.values()]
        if self._started and not self._stop.is_set() and not self._thread.is_alive():
            return [_unsupervised(info, self.died or "the supervisor thread ended") for info in infos]
        return infos

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def start_child(self, name: str) -> None:
        child = self.child(name)
        self.call(lambda: None if child.state.alive else self._spawn(child))

    def stop_child(self, name: str) -> None:
        child = self.child(name)
        child.stop(self.config.grace_period)
        self._unregister(child)
        self._notify()

    def restart_child(self, name: str) -> None:
        child = self.child(name)
        child.stop(self.config.grace_period)
        self.call(lambda: self._spawn(child))

    def wait_for(self, names: list[str] | None, timeout: float) -> bool:
        """Block until the named children (all, if None) are up; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = [self._children[n] for n in names] if names is not None else self.children()
            if all(c.state.up for c in targets):
                return True
            time.sleep(0.05)
        return False

    def call(self, fn: Callable[[], object], timeout: float = 30.0) -> object:
        """Run `fn` on the supervisor thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        self._commands.put((fn, future))
        return future.result(timeout=timeout)

    def shutdown(self) -> None:
        """Warm-stop every child in parallel (reverse order of start), then end the thread."""
        children = list(reversed(self.children()))
        workers = [c for c in children if c.spec.role != "broker"]
        self._stop_all(workers)
        self._stop_all([c for c in children if c.spec.role == "broker"])
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for child in children:
            child.logs.close()
        if self.registry is not None:
            self.registry.clear()

    def _stop_all(self, children: list[Child]) -> None:
        threads = [threading.Thread(target=c.stop, args=(self.config.grace_period,)) for c in children]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- supervisor thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """Any failure is noted and supervision goes on: were this thread to end, every child would get
        its PDEATHSIG and none would be restarted."""
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:
                    self._failed("its loop", exc)
        except BaseException as exc:  # SystemExit from a command or a listener: say so, never a traceback
            self.died = f"the supervisor thread ended ({type(exc).__name__}: {exc})"
            self._note(f"[stalk] {self.died}: its processes are no longer watched")

    def _step(self) -> None:
        try:
            fn, future = self._commands.get(timeout=0.1)
        except queue.Empty:
            pass
        else:
            self._execute(fn, future)
        self._tick()

    def _failed(self, where: str, exc: Exception) -> None:
        """One line in the stack's log (the same one at most once a minute), not a traceback on stderr."""
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        line = f"[stalk] supervisor: {where} failed ({type(exc).__name__}: {why}); still supervising"
        now = time.monotonic()
        if now - self._noted.get(line, -NOTE_AGAIN_AFTER) < NOTE_AGAIN_AFTER:
            return
        if len(self._noted) > 100:
            self._noted.clear()
        self._noted[line] = now
        try:
            self._note(line)
        except Exception:  # the log itself failing (a full disk) must not stop supervision either
            pass

    @staticmethod
    def _execute(fn: Callable[[], object], future: Future) -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed back to the caller
            future.set_exception(exc)

    def _spawn(self, child: Child) -> None:
        try:
            child.spawn(lambda _c: self._notify())
        except OSError:
            child.mark(ProcState.CRASHED)
            self._schedule_restart(child)
        else:
            if self.registry is not None and child.pid is not None:
                self.registry.add(child.spec.name, child.pid)
        self._notify()

    def _unregister(self, child: Child) -> None:
        if self.registry is not None:
            self.registry.remove(child.spec.name)

    def _tick(self) -> None:
        """Each child on its own: one that fails (psutil out of file descriptors) stops no other."""
        now = time.monotonic()
        changed = False
        for child in self.children():
            try:
                changed = self._check(child, now) or changed
            except Exception as exc:
                self._failed(f"watching {child.spec.name}", exc)
        if now - self._last_sample >= SAMPLE_EVERY:
            self._last_sample = now
            for child in self.children():
                try:
                    child.sample()
                except Exception as exc:  # the same for every child, usually (out of descriptors): one line
                    self._failed("sampling CPU and memory", exc)
            changed = True
        if changed:
            self._notify()

    def _check(self, child: Child, now: float) -> bool:
        """Note an exit, or restart a child whose back-off is over; whether anything changed."""
        code = child.poll_exit()
        if code is not None:
            self._on_exit(child, code)
            return True
        if child.state is ProcState.BACKING_OFF and child.next_restart_at and now >= child.next_restart_at:
            child.restarts += 1
            child.next_restart_at = None
            self._spawn(child)
            return True
        return False

    def _on_exit(self, child: Child, code: int) -> None:
        uptime = time.time() - (child.started_at or time.time())
        child.crash_streak = 1 if uptime > STABLE_AFTER else child.crash_streak + 1
        child.mark(ProcState.CRASHED, f"exited with code {code} after {uptime:.1f} s")
        child.logs.append(f"[stalk] {child.spec.name} {child.last_error}")
        self._unregister(child)
        self._schedule_restart(child)

    def _schedule_restart(self, child: Child) -> None:
        if not child.spec.restart:
            return
        delay = min(self.config.backoff_initial * 2 ** max(0, child.crash_streak - 1), self.config.backoff_max)
        child.next_restart_at = time.monotonic() + delay
        child.mark(ProcState.BACKING_OFF)
        child.logs.append(f"[stalk] restarting {child.spec.name} in {delay:.1f} s")

    def notify(self) -> None:
        """Tell the listeners about a change made outside the supervisor thread (liveness)."""
        self._notify()

    def _notify(self) -> None:
        if not self._listeners:
            return
        snapshot = self.processes()
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:  # a listener's bug must not stop supervision
                pass


def _unsupervised(info: ProcessInfo, why: str) -> ProcessInfo:
    """A child is not reported up once nothing supervises it (its PDEATHSIG has ended it)."""
    if not info.state.alive:
        return info
    return dataclasses.replace(info, state=ProcState.CRASHED, pid=None, last_error=why)
