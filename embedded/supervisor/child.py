"""One supervised child process: spawn, capture output, detect readiness, stop warm then hard."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stalk.embedded.supervisor.guard import WATCHDOG_ENV, child_preexec, make_watchdog_pipe
from stalk.embedded.supervisor.logs import LogRing
from stalk.embedded.supervisor.noise import is_noise
from stalk.embedded.supervisor.states import ProcState
from stalk.embedded.supervisor.stats import ProcStats, TreeSampler

ReadyCheck = Callable[["Child"], bool]


@dataclass
class ChildSpec:
    """How to run one child. `ready_check` runs repeatedly (in its own thread) until True."""

    name: str
    role: str  # broker | worker | beat
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    queues: tuple[str, ...] = ()
    ready_state: ProcState = ProcState.RUNNING
    ready_check: ReadyCheck | None = None
    watchdog: bool = True  # our own children watch a pipe; foreign binaries rely on PDEATHSIG
    restart: bool = True
    hostname: str | None = None  # Celery node name for workers


@dataclass(frozen=True)
class ProcessInfo:
    """A snapshot of one child for display and scripts."""

    name: str
    role: str
    state: ProcState
    pid: int | None
    queues: tuple[str, ...]
    restarts: int
    started_at: float | None
    exit_code: int | None
    last_error: str | None
    stats: ProcStats
    hostname: str | None

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at if self.started_at and self.state.alive else 0.0


class Child:
    """Runtime state of one child. Spawned only from the supervisor thread (PDEATHSIG is per thread)."""

    def __init__(self, spec: ChildSpec, logs: LogRing) -> None:
        self.spec = spec
        self.logs = logs
        self.state = ProcState.STOPPED
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started_at: float | None = None
        self.start_seq = 0  # the log's last line before this run of the process
        self.exit_code: int | None = None
        self.last_error: str | None = None
        self.next_restart_at: float | None = None
        self.crash_streak = 0
        self.stats = ProcStats()
        self._sampler = TreeSampler()
        self._watchdog_fd: int | None = None
        self._generation = 0
        self._lock = threading.RLock()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def info(self) -> ProcessInfo:
        with self._lock:
            return ProcessInfo(
                name=self.spec.name, role=self.spec.role, state=self.state, pid=self.pid if self.state.alive else None,
                queues=self.spec.queues, restarts=self.restarts, started_at=self.started_at,
                exit_code=self.exit_code, last_error=self.last_error, stats=self.stats, hostname=self.spec.hostname,
            )

    def spawn(self, on_change: Callable[[Child], None]) -> None:
        """Start the process; output and readiness are followed by threads of their own."""
        env = {**os.environ, **self.spec.env}
        pass_fds: tuple[int, ...] = ()
        read_fd = None
        if self.spec.watchdog:
            read_fd, self._watchdog_fd = make_watchdog_pipe()
            env[WATCHDOG_ENV] = str(read_fd)
            pass_fds = (read_fd,)
        try:
            self.popen = subprocess.Popen(
                self.spec.argv, env=env, cwd=self.spec.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=pass_fds,
                start_new_session=True, preexec_fn=child_preexec,
            )
        except OSError as exc:
            self._close_watchdog()
            self.last_error = f"cannot start {self.spec.argv[0]}: {exc.strerror or exc}"
            self.logs.append(f"[stalk] {self.last_error}")
            raise
        finally:
            if read_fd is not None:
                os.close(read_fd)
        with self._lock:
            self._generation += 1
            self.state = ProcState.STARTING
            self.started_at = time.time()
            self.exit_code = None
        generation = self._generation
        self.start_seq = self.logs.last_seq
        self.logs.append(f"[stalk] started {self.spec.name} (pid {self.popen.pid})")
        threading.Thread(target=self._pump, args=(self.popen,), name=f"stalk-log-{self.spec.name}",
                         daemon=True).start()
        threading.Thread(target=self._await_ready, args=(generation, on_change),
                         name=f"stalk-ready-{self.spec.name}", daemon=True).start()

    def said(self, marker: str) -> bool:
        """Whether this run of the process (not an earlier one) has printed `marker`."""
        return any(marker in line.text for line in self.logs.since(self.start_seq))

    def _pump(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for raw in iter(popen.stdout.readline, b""):
            text = raw.decode("utf-8", "replace")
            if not is_noise(text):
                self.logs.append(text)
        popen.stdout.close()

    def _await_ready(self, generation: int, on_change: Callable[[Child], None]) -> None:
        check = self.spec.ready_check
        while True:
            with self._lock:
                if generation != self._generation or self.state is not ProcState.STARTING:
                    return
            try:
                ok = check(self) if check else True
            except Exception as exc:  # a failing probe is a not-yet, reported once in the log
                self.last_error = str(exc)
                ok = False
            if ok:
                with self._lock:
                    if generation != self._generation or self.state is not ProcState.STARTING:
                        return
                    self.state = self.spec.ready_state
                    self.crash_streak = 0
                self.logs.append(f"[stalk] {self.spec.name} is {self.spec.ready_state}")
                on_change(self)
                return
            time.sleep(0.1)

    def poll_exit(self) -> int | None:
        """The exit code if the process has ended since it was last alive, else None."""
        if self.popen is None or not self.state.alive:
            return None
        code = self.popen.poll()
        if code is None:
            return None
        self._reap_group()
        with self._lock:
            self.exit_code = code
            self._generation += 1
        self._close_watchdog()
        return code

    def mark(self, state: ProcState, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            if error is not None:
                self.last_error = error

    def mark_if(self, expected: ProcState, state: ProcState) -> bool:
        """Move from `expected` to `state`; False (nothing changed) if the process is no longer `expected`."""
        with self._lock:
            if self.state is not expected:
                return False
            self.state = state
            return True

    def stop(self, grace: float) -> None:
        """Warm shutdown (TERM to the main process), then KILL the whole group after `grace`."""
        popen = self.popen
        with self._lock:
            self._generation += 1
            was_alive = self.state.alive
            self.state = ProcState.STOPPED
            self.next_restart_at = None
        if popen is None or not was_alive or popen.poll() is not None:
            self._reap_group()
            self._close_watchdog()
            return
        try:
            popen.send_signal(signal.SIGTERM)
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.logs.append(f"[stalk] {self.spec.name} did not stop within {grace:.0f} s: killing it")
        except ProcessLookupError:
            pass
        self._reap_group()
        popen.wait()
        self.exit_code = popen.returncode
        self._close_watchdog()
        self.logs.append(f"[stalk] stopped {self.spec.name} (exit {popen.returncode})")

    def kill_now(self) -> None:
        """SIGKILL the whole group at once (Stalk is going down hard, or a test asks)."""
        self._reap_group()

    def _reap_group(self) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_watchdog(self) -> None:
        if self._watchdog_fd is not None:
            try:
                os.close(self._watchdog_fd)
            except OSError:
                pass
            self._watchdog_fd = None

    def sample(self) -> None:
        self.stats = self._sampler.sample(self.pid if self.state.alive else None)
