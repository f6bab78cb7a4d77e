"""The stack's own background threads (history writer, event receiver, status publisher...) watched: one
that dies is started again and shown as an error where the processes are (the Dashboard, `stalk status`).

A thread of the stack that died used to stay dead for the rest of the run (no later task reached history)
and its traceback was printed onto the terminal the panel draws on. Here its exception goes to the
stack's own log, the watchdog restarts it within a second, and `rows()` reports it as a process row
(`thread:<name>`, its deaths as restarts, its last exception as the last error).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from stalk.embedded.safe_text import printable
from stalk.embedded.supervisor import ProcessInfo, ProcState, ProcStats

THREAD_ROLE = "thread"  # ProcessInfo.role of a watched thread's row


@dataclass
class Watched:
    name: str
    thread: Callable[[], threading.Thread | None]  # the thread doing the work now
    restart: Callable[[], None]  # starts a new one
    deaths: int = 0
    last_error: str | None = None
    restarted_at: float | None = None


class ThreadWatch:
    """`watch(name, thread, restart)` each thread once it runs; `start()` the watchdog; `stop()` before
    the threads are stopped on purpose (a thread that ends then is no death)."""

    def __init__(self, note: Callable[[str], None], on_change: Callable[[], None] = lambda: None,
                 interval: float = 1.0) -> None:
        self._note = note
        self._on_change = on_change  # rows() changed: a thread died
        self._interval = interval
        self._watched: dict[str, Watched] = {}
        self._errors: dict[int, str] = {}  # id(thread) -> its exception, from the excepthook
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_hook: Callable[[threading.ExceptHookArgs], object] | None = None

    def watch(self, name: str, thread: Callable[[], threading.Thread | None], restart: Callable[[], None]) -> None:
        with self._lock:
            self._watched[name] = Watched(name, thread, restart)

    def start(self) -> None:
        self._previous_hook = threading.excepthook
        threading.excepthook = self._excepthook
        self._thread = threading.Thread(target=self._run, name="stalk-thread-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._previous_hook is not None and threading.excepthook == self._excepthook:
            threading.excepthook = self._previous_hook

    def rows(self) -> list[ProcessInfo]:
        """A process row per watched thread that has died (none while all is well)."""
        with self._lock:
            dead = [w for w in self._watched.values() if w.deaths]
        return [ProcessInfo(
            name=f"thread:{w.name}", role=THREAD_ROLE, state=ProcState.RUNNING if _alive(w) else ProcState.CRASHED,
            pid=None, queues=(), restarts=w.deaths, started_at=w.restarted_at, exit_code=None,
            last_error=f"died: {w.last_error or 'ended'}; restarted", stats=ProcStats(), hostname=None)
            for w in dead]

    def check(self) -> list[str]:
        """One pass: every watched thread that is no longer alive is started again. Names restarted."""
        with self._lock:
            dead = [w for w in self._watched.values() if not _alive(w)]
        for w in dead:
            thread = w.thread()
            w.deaths += 1
            w.last_error = self._errors.pop(id(thread), None) if thread is not None else None
            if w.deaths <= 3 or w.deaths % 100 == 0:  # one that dies at once, again and again: not every time
                self._note(f"[stalk] the {w.name} thread died ({w.last_error or 'it ended'}; {w.deaths}x): "
                           "restarting it")
            try:
                w.restart()
                w.restarted_at = time.time()
            except Exception as exc:  # tried again on the next pass
                self._note(f"[stalk] could not restart the {w.name} thread: {type(exc).__name__}: {exc}")
        if dead:
            self._on_change()
        return [w.name for w in dead]

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception as exc:  # the watchdog itself never dies of one bad pass
                self._note(f"[stalk] thread watch: {type(exc).__name__}: {exc}")

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        """A watched thread's exception goes to the stack's log, not onto the terminal; others as before."""
        with self._lock:
            watched = next((w for w in self._watched.values() if w.thread() is args.thread), None)
        if watched is None:
            if self._previous_hook is not None:
                self._previous_hook(args)
            return
        error = printable(f"{args.exc_type.__name__}: {args.exc_value}")  # it may quote a task's data
        self._errors[id(args.thread)] = error
        if watched.deaths >= 3 and (watched.deaths + 1) % 100:
            return  # check() counts it; the traceback was shown the first times
        where = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)[-2:])
        self._note(f"[stalk] thread {args.thread.name if args.thread else '?'} failed: {error}")
        for line in where.rstrip().splitlines():
            self._note(f"[stalk]   {line}")


def _alive(w: Watched) -> bool:
    thread = w.thread()
    return thread is None or thread.is_alive()  # None: not started (or not used in this mode)
