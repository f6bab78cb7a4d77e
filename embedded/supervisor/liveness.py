"""Liveness after ready, as process-compose's liveness probes: every `interval` s the ready workers are
pinged; one that does not answer is shown unresponsive (a SIGSTOPped or hung worker is alive, not up),
is ready again as soon as it answers, and after `restart_after` s of silence is killed (its whole group),
so the supervisor restarts it as after a crash.

A ping that cannot be sent (the broker is down or restarting: the probe returns None) says nothing about
the workers: it neither marks one unresponsive nor counts toward its restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stalk.embedded.supervisor.child import Child
from stalk.embedded.supervisor.states import ProcState
from stalk.embedded.supervisor.supervisor import Supervisor

#: hostnames -> the ones that answered, or None when nothing can be said (no broker)
Probe = Callable[[list[str]], "set[str] | None"]
WATCHED = (ProcState.READY, ProcState.UNRESPONSIVE)


class Liveness:
    def __init__(self, supervisor: Supervisor, probe: Probe, interval: float, restart_after: float,
                 never_restart: frozenset[str] = frozenset()) -> None:
        self.supervisor = supervisor
        self.probe = probe
        self.interval = interval
        self.restart_after = restart_after
        # children only shown unresponsive: a solo or threads pool runs tasks in the loop that answers
        # pings, so a long task looks the same as a hang
        self.never_restart = never_restart
        self._silent_since: dict[str, tuple[int | None, float]] = {}  # name -> (pid, first missed ping)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Liveness:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="stalk-liveness", daemon=True)
            self._thread.start()
        return self

    @property
    def thread(self) -> threading.Thread | None:  # None: no pings (interval 0)
        return self._thread

    def restart(self) -> None:
        """A new thread after this one died (the stack's thread watch)."""
        self.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # a probe's bug must not end liveness checks
                for child in self._watched():
                    child.logs.append(f"[stalk] liveness probe failed: {exc}")
                    break

    def _watched(self) -> list[Child]:
        return [c for c in self.supervisor.children()
                if c.spec.role == "worker" and c.spec.hostname and c.state in WATCHED]

    def check(self) -> None:
        children = self._watched()
        if not children:
            return
        answered = self.probe([c.spec.hostname for c in children if c.spec.hostname])
        if answered is None or self._stop.is_set():
            self._silent_since.clear()  # silence while the broker is away is not the worker's
            return
        now = time.monotonic()
        for child in children:
            if child.spec.hostname in answered:
                self._answered(child)
            else:
                self._missed(child, now)

    def _answered(self, child: Child) -> None:
        self._silent_since.pop(child.spec.name, None)
        if child.mark_if(ProcState.UNRESPONSIVE, ProcState.READY):
            child.logs.append(f"[stalk] {child.spec.name} answers pings again: ready")
            self.supervisor.notify()

    def _missed(self, child: Child, now: float) -> None:
        pid, since = self._silent_since.get(child.spec.name, (None, now))
        if pid != child.pid:
            pid, since = child.pid, now
        self._silent_since[child.spec.name] = (pid, since)
        restart_after = 0.0 if child.spec.name in self.never_restart else self.restart_after
        if child.mark_if(ProcState.READY, ProcState.UNRESPONSIVE):
            child.logs.append(f"[stalk] {child.spec.name} does not answer pings: unresponsive"
                              + (f" (restarted after {restart_after:.0f} s)" if restart_after else ""))
            self.supervisor.notify()
        if restart_after and now - since >= restart_after and child.state is ProcState.UNRESPONSIVE:
            self._silent_since.pop(child.spec.name, None)
            child.logs.append(f"[stalk] {child.spec.name} unresponsive for {now - since:.0f} s: killing it "
                              f"(pid {pid}); it restarts as after a crash")
            child.kill_now()


PING_TIMEOUT = 2.0  # seconds: a worker busy under load still answers within this


def ping_probe(app: object, broker_up: Callable[[], bool]) -> Probe:
    """A probe that pings the workers through `app`'s broker (a Celery app) when `broker_up()`."""

    def probe(hostnames: list[str]) -> set[str] | None:
        if not broker_up():
            return None
        try:
            replies = app.control.ping(destination=hostnames, timeout=PING_TIMEOUT)  # type: ignore[attr-defined]
        except Exception:  # the broker went away meanwhile
            return None
        return {host for reply in replies or [] for host in reply}

    return probe
