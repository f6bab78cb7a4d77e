"""The panel as a client of a stack process (#21): attached to a running stack, or to one it started as a
process of its own; quitting stops that stack or leaves it running (detached); no orphans when a panel
is killed. Real stacks, real processes, the API over its socket."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from textual.widgets import Button

from stalk.embedded import Stack, Unfinished
from stalk.embedded.service import StackClient, StackProcess, wait_gone
from stalk.embedded.status_file import read_status
from stalk.panel.app import make_app
from stalk.panel.runtime import RemoteSource
from stalk.panel.screens.logs import LogsScreen
from stalk.panel.screens.quit import QuitScreen
from tests.conftest import ROOT, clean_env, module_stack, stalk_cmd
from tests.conftest import wait_until as wait_for

from .conftest import SIZE
from .harness import app_for, feeding, sync
from .test_shell_flows import wait_until
from .test_tmux_e2e import TMUX, Tmux

FLAGS = ["--broker", "embedded", "--no-beat"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Stack]:
    """Per test: a worker the panel restarts is a new process, which must not outlive the test."""
    with module_stack(tmp_path / "data", broker={"mode": "embedded"}, beat=False) as stack:
        yield stack


def launch(data_dir: Path) -> StackProcess:
    return StackProcess([*FLAGS, "--data-dir", str(data_dir)], data_dir, env={"STALK_CONFIG": ""})


def stack_pid(data_dir: Path) -> int | None:
    status = read_status(data_dir / "state")
    return int(status["pid"]) if status else None


def stop_stack(data_dir: Path) -> None:
    pid = stack_pid(data_dir)
    if pid is not None:
        with StackClient.on_data_dir(data_dir) as client:
            client.post("/stack/stop")
        assert wait_gone(data_dir, pid, 30)


# -- attached to a stack it did not start ----------------------------------------------------------


@pytest.mark.procs
@sync
async def test_a_panel_attached_to_a_running_stack_shows_it_acts_on_it_and_leaves_it(running: Stack):
    app = make_app(running.config, source=RemoteSource(running.paths.data_dir), probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 30)
        assert app.runtime.launched is None and getattr(app.stack, "remote", False)
        assert [p.name for p in app.processes] == [p.name for p in running.processes()]
        before = running.process("worker:default").pid
        await pilot.press("r")  # the Dashboard's first row: worker:default
        await wait_until(pilot, lambda: running.process("worker:default").pid not in (None, before), 30)
        await wait_until(pilot, lambda: any(p.name == "worker:default" and p.pid not in (None, before)
                                            for p in app.processes), 30)
        await pilot.press("6")
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen), 5)
        logs = app.screen
        await wait_until(pilot, lambda: len(logs.lines.get("worker:default", ())) > 0, 30)
        await pilot.press("ctrl+q")  # not its stack: it leaves without asking
        await wait_until(pilot, lambda: not app.is_running, 10)
    assert app.goodbye and "keeps running" in app.goodbye
    assert StackClient.on_data_dir(running.paths.data_dir).get("/stack")["pid"]
    wait_for(running.is_ready, 30)


# -- a stack the panel started ---------------------------------------------------------------------


@pytest.mark.procs
@sync
async def test_quit_can_leave_the_stack_running_then_stalk_down_stops_it(tmp_path):
    data_dir = tmp_path / "data"
    app = make_app(make_config_for(data_dir), source=RemoteSource(data_dir, launch=launch(data_dir)),
                   probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 60)
        launched = app.runtime.launched
        assert launched is not None and stack_pid(data_dir) == launched.pid
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 10)
        assert app.screen.query_one("#leave", Button)
        await pilot.press("l")
        await wait_until(pilot, lambda: not app.is_running, 15)
    launched.let_go()  # as the panel's process ending would
    time.sleep(1.0)
    with StackClient.on_data_dir(data_dir) as client:
        assert client.get("/stack")["detached"]
    assert "stalk attach" in (app.goodbye or "")
    shown = subprocess.run(stalk_cmd("status", "--data-dir", str(data_dir)), capture_output=True, text=True,
                           env=clean_env(), timeout=60)
    assert "detached: it runs until `stalk down`" in shown.stdout, shown.stderr
    stop_stack(data_dir)
    assert launched.wait(5) == 0


@pytest.mark.procs
@sync
async def test_quit_stops_the_stack_it_started(tmp_path):
    data_dir = tmp_path / "data"
    app = make_app(make_config_for(data_dir), source=RemoteSource(data_dir, launch=launch(data_dir)),
                   probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready", 60)
        launched = app.runtime.launched
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 10)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, 40)
    assert launched is not None and launched.exited() == 0
    assert stack_pid(data_dir) is None


@pytest.mark.procs
@sync
async def test_a_stack_process_that_cannot_start_says_why(tmp_path):
    data_dir = tmp_path / "data"
    broken = StackProcess([*FLAGS, "--data-dir", str(data_dir), "-A", "no_such_module:app"], data_dir,
                          env={"STALK_CONFIG": ""})
    app = make_app(make_config_for(data_dir), source=RemoteSource(data_dir, launch=broken), probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "failed", 60)
        assert app.phase.text.startswith("the stack process ended (exit 2): ")
        assert "no_such_module" in app.phase.text
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, 10)


def make_config_for(data_dir: Path):
    from tests.conftest import make_config

    return make_config(data_dir, broker={"mode": "embedded"}, beat=False)


# -- the quit dialog's new choice ------------------------------------------------------------------


def test_quit_dialog_offers_to_leave_the_stack_running(snap_compare, eager_stack):
    work = Unfinished(running=1, held=0, queued=2, mode="redis")
    push = feeding()

    async def run_before(pilot) -> None:
        await push(pilot)
        pilot.app.push_screen(QuitScreen(work, 10, can_leave=True))
        await pilot.pause()

    assert snap_compare(app_for(eager_stack), terminal_size=SIZE, run_before=run_before)


# -- panels killed (real `stalk` programs in tmux) -------------------------------------------------


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    sessions: list[Tmux] = []

    def new() -> Tmux:
        session = Tmux(f"stalk-attach-{os.getpid()}-{len(sessions)}-{time.monotonic_ns() % 10**6}")
        sessions.append(session)
        return session

    yield new  # type: ignore[misc]
    for session in sessions:
        session.kill()


def panel_pid(session: Tmux) -> int:
    return int(session.run("list-panes", "-F", "#{pane_pid}").split()[0])


def tree(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def all_gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


@pytest.mark.procs
@pytest.mark.fault
def test_a_killed_foreground_panel_takes_its_stack_along(tmux, tmp_path):
    """`stalk` started the stack as its own process; SIGKILL the panel: the stack and its workers end."""
    data_dir = tmp_path / "data"
    session = tmux()
    session.start(stalk_cmd(*FLAGS, "--data-dir", str(data_dir)), clean_env(TZ="UTC"))
    session.wait_for(lambda s: "worker:default" in s and "ready" in s)
    pid = wait_for(lambda: stack_pid(data_dir), 30)
    stack = tree(pid)
    assert len(stack) >= 3  # the stack process and its workers
    os.kill(panel_pid(session), signal.SIGKILL)
    wait_for(lambda: all_gone(stack), 40)
    assert "the panel that started this stack is gone" in (data_dir / "logs" / "stack.log").read_text()


@pytest.mark.procs
@pytest.mark.fault
def test_a_killed_attached_panel_leaves_the_stack_running(tmux, tmp_path):
    """`stalk attach` to a stack `stalk up` runs; SIGKILL that panel: the stack runs on, a new attach works."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    log = open(tmp_path / "up.log", "ab")  # noqa: SIM115 (the child holds it)
    up = subprocess.Popen(stalk_cmd("up", *FLAGS, "--data-dir", str(data_dir)), stdout=log, stderr=log,
                          env=clean_env(), cwd=ROOT, start_new_session=True)
    log.close()
    try:
        wait_for(lambda: StackClient.on_data_dir(data_dir).get("/stack")["ready"] if stack_pid(data_dir) else None,
                 60)
        first = tmux()
        first.start(stalk_cmd("attach", "--data-dir", str(data_dir)), clean_env(TZ="UTC"))
        first.wait_for(lambda s: "worker:default" in s and "ready" in s)
        os.kill(panel_pid(first), signal.SIGKILL)
        time.sleep(1.5)
        assert up.poll() is None
        assert StackClient.on_data_dir(data_dir).get("/stack")["ready"]
        second = tmux()  # plain `stalk` on a data dir where a stack runs: it attaches, starts none
        second.start(stalk_cmd(*FLAGS, "--data-dir", str(data_dir)), clean_env(TZ="UTC"))
        second.wait_for(lambda s: "worker:default" in s and "ready" in s)
        assert stack_pid(data_dir) == up.pid
        second.keys("C-q")  # not its stack: it leaves without asking
        wait_for(lambda: not second.screen().strip() or "Stalk" not in second.screen(), 15)
        assert up.poll() is None
    finally:
        if stack_pid(data_dir):
            stop_stack(data_dir)
        up.wait(30)
