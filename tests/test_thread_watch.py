"""A background thread of the stack that dies is restarted and shown as an error (issue 26, finding 5):
on a real stack (Stalk's redis, `stalk worker` children), the status publisher and the history writer
are made to die once through a test hook (a function they call raises); the watchdog starts them again,
`stack.processes()`, status.json and `stalk status` show it, and tasks reach history again."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from stalk.embedded import read_status
from stalk.embedded.events import history
from stalk.embedded.events.history import read_tasks
from stalk.embedded.thread_watch import ThreadWatch

from .conftest import ROOT, clean_env, stalk_cmd, wait_until


class DieOnce:
    """A stand-in for a function a stack thread calls: raises once (when armed) in the thread named
    `in_thread` (any, if None), else calls through."""

    def __init__(self, real, in_thread: str | None = None) -> None:
        self.real = real
        self.in_thread = in_thread
        self.armed = threading.Event()

    def __call__(self, *args, **kwargs):
        if self.armed.is_set() and self.in_thread in (None, threading.current_thread().name):
            self.armed.clear()
            raise RuntimeError("injected by the test")
        return self.real(*args, **kwargs)


def test_the_watch_restarts_a_dead_thread_and_leaves_other_threads_alone(capfd):
    notes: list[str] = []
    runs: list[int] = []
    current: list[threading.Thread] = []

    def work() -> None:
        runs.append(1)
        if len(runs) < 5:
            raise ValueError(f"bad record {len(runs)}")
        threading.Event().wait(30)  # the fifth run lives

    def start() -> None:
        current[:] = [threading.Thread(target=work, name="worker-under-watch", daemon=True)]
        current[0].start()

    before: list[str] = []  # what the hook in place before the watch got
    saved, threading.excepthook = threading.excepthook, lambda args: before.append(args.exc_type.__name__)
    watch = ThreadWatch(notes.append, interval=0.05)
    watch.watch("demo", lambda: current[0] if current else None, start)
    watch.start()
    start()
    try:
        wait_until(lambda: len(runs) == 5 and current[0].is_alive(), timeout=10)
        (row,) = watch.rows()
        assert (row.name, row.role, row.state, row.restarts) == ("thread:demo", "thread", "running", 4)
        assert row.last_error == "died: ValueError: bad record 4; restarted"
        other = threading.Thread(target=lambda: 1 / 0, name="not-watched")
        other.start()
        other.join()
    finally:
        watch.stop()
        restored, threading.excepthook = threading.excepthook, saved
    assert before == ["ZeroDivisionError"] and restored is not watch._excepthook  # others' errors as before
    assert "bad record" not in capfd.readouterr().err  # the watched thread's traceback: in the stack's log
    assert sum("thread died" in n for n in notes) == 3 and sum("failed: ValueError" in n for n in notes) == 3


def row(stack, name: str):
    return next((p for p in stack.processes() if p.name == f"thread:{name}"), None)


@pytest.mark.procs
@pytest.mark.xdist_group("thread-watch")
def test_a_dead_stack_thread_is_restarted_and_reported(running_stack, monkeypatch, capfd):
    import stalk.embedded.stack as stack_module

    status_hook = DieOnce(stack_module.write_status)
    monkeypatch.setattr(stack_module, "write_status", status_hook)
    foreground = DieOnce(history.FOREGROUND.step_aside, in_thread="stalk-history")  # the writer's loop calls it
    monkeypatch.setattr(history.FOREGROUND, "step_aside", foreground)
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    assert not [p for p in stack.processes() if p.role == "thread"]  # nothing to show while all is well

    status_hook.armed.set()
    shown = wait_until(lambda: (r := row(stack, "status publisher")) and r.state == "running" and r)
    assert shown.restarts == 1 and "RuntimeError: injected by the test" in (shown.last_error or "")
    status = wait_until(lambda: read_status(stack.paths.state))
    wait_until(lambda: any(p["name"] == "thread:status publisher"
                           for p in (read_status(stack.paths.state) or status)["processes"]))
    out = subprocess.run(stalk_cmd("status", "--data-dir", str(stack.paths.data_dir)), cwd=ROOT, env=clean_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "thread:status publisher" in out.stdout, out.stderr
    assert "error: died: RuntimeError: injected by the test; restarted" in out.stdout
    as_json = json.loads(subprocess.run(stalk_cmd("status", "--json", "--data-dir", str(stack.paths.data_dir)),
                                        cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                                        timeout=60).stdout)
    assert any(p["role"] == "thread" for p in as_json["processes"])

    foreground.armed.set()
    wait_until(lambda: (r := row(stack, "history writer")) and r.restarts == 1 and r.state == "running")
    task_id = stack.app.send_task("demo.add", (20, 22)).id
    wait_until(lambda: any(r["task_id"] == task_id and r["state"] == "SUCCESS"
                           for r in read_tasks(stack.paths.history_db)), timeout=30)
    assert any("the history writer thread died" in line.text for line in stack.logs("stalk"))
    assert "injected by the test" not in capfd.readouterr().err  # no traceback onto the terminal


class DieOnceEvent(threading.Event):
    """An Event whose wait() raises once when armed: a stand-in for the one a stack thread's loop waits on."""

    def __init__(self, was: threading.Event) -> None:
        super().__init__()
        if was.is_set():
            self.set()
        self.armed = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if self.armed.is_set():
            self.armed.clear()
            raise RuntimeError("injected by the test")
        return super().wait(timeout)


@pytest.mark.procs
@pytest.mark.xdist_group("thread-watch")
def test_the_requeuer_sent_events_and_plain_worker_threads_are_watched_too(running_stack, monkeypatch, capfd):
    """The requeuer, the task-sent events publisher and the plain-workers lookup were not watched: one that
    died stayed dead (a dead worker's messages waited for the visibility timeout, task-sent events stopped)."""
    lookup = DieOnce(history.FOREGROUND.step_aside, in_thread="stalk-plain-workers")
    monkeypatch.setattr(history.FOREGROUND, "step_aside", lookup)
    stack = running_stack(broker={"mode": "redis"}, beat=False)
    requeuer, sent = stack.requeuer, stack._sent_events
    wake = requeuer._wake = DieOnceEvent(requeuer._wake)  # its loop waits on it between passes
    flush = DieOnce(sent._flush)
    monkeypatch.setattr(sent, "_flush", flush)  # the publishing loop calls it, outside its own try

    for hook, name in ((wake, "requeuer"), (lookup, "plain-workers lookup")):
        hook.armed.set()
        shown = wait_until(lambda name=name: (r := row(stack, name)) and r.state == "running" and r)
        assert shown.restarts == 1 and "RuntimeError: injected by the test" in (shown.last_error or ""), name
    published = sent.published
    flush.armed.set()
    stack.app.send_task("demo.add", (1, 2))  # its task-sent event: published by the new thread
    shown = wait_until(lambda: (r := row(stack, "task-sent events")) and r.state == "running" and r)
    assert shown.restarts == 1
    wait_until(lambda: sent.published > published)
    assert requeuer.thread.is_alive() and not wake.armed.is_set()
    assert any("the requeuer thread died" in line.text for line in stack.logs("stalk"))
    assert "injected by the test" not in capfd.readouterr().err
