"""A worker's event loop wakes at once for a stop signal.

Celery's worker notes a SIGTERM/SIGINT/SIGQUIT in a flag and acts on it when its event loop comes back
from waiting for the broker: up to a second later on an idle worker (its poll's timeout). With Python's
signal wakeup fd registered in the loop, the signal makes the poll return at once: a warm stop of an
idle worker starts ~0.5 s sooner on average (up to 1 s), and so does every restart Stalk makes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from celery import bootsteps
from celery.signals import worker_process_init


class SignalWakeup(bootsteps.StartStopStep):
    """A consumer step: while the consumer runs, a signal writes to a pipe its hub polls."""

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._pipe: tuple[int, int] | None = None
        self._previous = -1

    def start(self, c: Any) -> None:
        if c.hub is None:
            return  # no event loop (solo/threads pools): Celery's own wait stands
        if self._pipe is not None:  # a reconnect: the hub may have dropped its readers
            c.hub.add_reader(self._pipe[0], _drain, self._pipe[0])
            return
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: Celery's own wait stands
            os.close(read)
            os.close(write)
            return
        self._pipe = (read, write)
        c.hub.add_reader(read, _drain, read)

    def shutdown(self, c: Any) -> None:
        if self._pipe is None:
            return
        read, write = self._pipe
        self._pipe = None
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(self._previous)
        if c.hub is not None:
            with contextlib.suppress(Exception):
                c.hub.remove(read)
        os.close(read)
        os.close(write)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):  # BlockingIOError: drained
        while os.read(fd, 512):
            pass


def _pool_process_forgets_it(**_kwargs: Any) -> None:
    """A prefork pool process inherits the wakeup fd: its own signals are none of the loop's business."""
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)


def install(app: Any) -> None:
    app.steps["consumer"].add(SignalWakeup)
    worker_process_init.connect(_pool_process_forgets_it, weak=False)
