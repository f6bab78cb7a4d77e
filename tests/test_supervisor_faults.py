"""The supervisor thread under failure (issue #26, finding 1): an exception in its loop (psutil out of file
descriptors) is noted and supervision goes on; were the thread to end all the same, no process is reported
up any more (its children got their PDEATHSIG)."""

from __future__ import annotations

import errno
import json
import os
import resource
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from stalk.embedded.config import SupervisorConfig
from stalk.embedded.status_file import status_path, write_status
from stalk.embedded.supervisor import ChildSpec, ProcState, Supervisor

from .conftest import wait_until

pytestmark = pytest.mark.procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@contextmanager
def file_descriptors_exhausted() -> Iterator[None]:
    """Every descriptor this process may open is taken (a low soft limit, filled), as idle connections did.
    A thread keeps taking any that another closes (a finalizer, a thread of the test run), so that the
    supervisor's thread finds none free."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    done = threading.Event()

    def fill() -> None:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    raise
                if done.wait(0.002):
                    return

    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 32, hard))
    filler = threading.Thread(target=fill, name="test-fd-filler", daemon=True)
    filler.start()
    try:
        yield
    finally:
        done.set()
        filler.join(10)
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def supervised(tmp_path) -> Iterator[tuple[Supervisor, list[str]]]:
    """A started supervisor whose notes (the stack's log) are collected."""
    notes: list[str] = []
    supervisor = Supervisor(SupervisorConfig(), tmp_path / "logs", note=notes.append)
    supervisor.start()
    try:
        yield supervisor, notes
    finally:
        supervisor.shutdown()


def test_the_supervisor_survives_running_out_of_file_descriptors(supervised):
    supervisor, notes = supervised
    child = supervisor.add(ChildSpec(name="sleeper", role="worker", argv=SLEEPER, watchdog=False))
    wait_until(lambda: child.state.up)
    first = child.pid
    with file_descriptors_exhausted():
        wait_until(lambda: any("sampling CPU and memory failed" in n and "Too many open files" in n for n in notes))
        os.kill(first, 9)  # dies while nothing can be opened: its restart fails, and is tried again
        wait_until(lambda: "Too many open files" in (child.last_error or "") and not child.state.alive)
    wait_until(lambda: child.state.up and child.pid != first)
    assert supervisor.alive
    assert len([n for n in notes if "sampling" in n]) == 1  # noted once, not every second
    assert all("\n" not in n and "Traceback" not in n for n in notes)


def test_nothing_is_reported_up_once_the_supervisor_thread_has_ended(supervised, tmp_path):
    supervisor, notes = supervised
    child = supervisor.add(ChildSpec(name="sleeper", role="worker", argv=SLEEPER, watchdog=False))
    wait_until(lambda: child.state.up)
    pid = child.pid

    def exit_on_the_supervisor_thread(_snapshot: object) -> None:
        if threading.current_thread().name == "stalk-supervisor":
            sys.exit("a listener exits")  # SystemExit is no Exception

    supervisor.subscribe(exit_on_the_supervisor_thread)
    wait_until(lambda: not supervisor.alive)
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)  # its PDEATHSIG ended it
    [info] = supervisor.processes()
    assert (info.state, info.pid) == (ProcState.CRASHED, None)
    assert "supervisor thread ended" in (info.last_error or "")
    assert any("no longer watched" in n for n in notes)
    write_status(tmp_path, None, supervisor.processes())  # what `stalk status` reads
    [shown] = json.loads(status_path(tmp_path).read_text())["processes"]
    assert (shown["state"], shown["pid"]) == ("crashed", None)
