"""The stack as a process of its own (#21): `stalk up` / `status` / `down`, and no orphans when a stack
process or the panel that started it is killed (real processes, the embedded broker for speed)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stalk.embedded.service import ApiError, StackClient
from stalk.embedded.status_file import read_status
from tests.conftest import clean_env, stalk_cmd, wait_until

pytestmark = [pytest.mark.procs]

FLAGS = ("--broker", "embedded", "--no-beat")


def stalk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(stalk_cmd(*args), capture_output=True, text=True, env=clean_env(), timeout=timeout)


def answers(data_dir: Path) -> dict | None:
    """GET /stack of the stack on `data_dir`, or None."""
    try:
        with StackClient.on_data_dir(data_dir, timeout=3) as client:
            return client.get("/stack")
    except ApiError:
        return None


def start_up(data_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`stalk up` in its own process; returns once its API answers and every process is ready."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = open(data_dir.parent / f"{data_dir.name}-up.log", "ab")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen(stalk_cmd("up", *FLAGS, "--data-dir", str(data_dir), *extra), stdout=log,
                            stderr=log, env=clean_env(), start_new_session=True)
    log.close()
    wait_until(lambda: proc.poll() is not None or (answers(data_dir) or {}).get("ready"), 60)
    assert proc.poll() is None, (data_dir.parent / f"{data_dir.name}-up.log").read_text()
    return proc


def tree(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    status = read_status(path / "state")  # a test that failed half-way: stop what it left
    if status is not None:
        for proc in reversed(tree(int(status["pid"]))):
            proc.kill()


def test_up_status_down(data_dir: Path) -> None:
    """`stalk up` serves its API; `stalk status` says how it runs; `stalk down` stops it and waits."""
    proc = start_up(data_dir, "--api-port", "0")
    workers = tree(proc.pid)[1:]
    assert workers
    shown = stalk("status", "--data-dir", str(data_dir))
    assert shown.returncode == 0, shown.stderr
    assert "headless (`stalk up`)" in shown.stdout and "worker:default" in shown.stdout
    live = answers(data_dir)
    assert live is not None and live["pid"] == proc.pid and not live["detached"]
    assert live["api"]["url"].startswith("http://127.0.0.1:")  # --api-port 0: a free loopback port
    with StackClient.on_data_dir(data_dir) as client:
        assert client.get("/stack/broker") == {"problem": None}  # probed by the stack process
        assert client.get("/stack/unfinished") == {"running": 0, "held": 0, "queued": 0, "mode": "embedded"}
    token = data_dir / "state" / "api.token"
    half = stalk("attach", "--url", live["api"]["url"])
    assert half.returncode == 2 and "--url and --token-file go together" in half.stderr
    wrong = data_dir.parent / "wrong.token"
    wrong.write_text("not-the-token")
    refused = stalk("attach", "--url", live["api"]["url"], "--token-file", str(wrong))
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert token.exists()
    two_views_see_the_same_processes(data_dir)
    began = time.monotonic()
    down = stalk("down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stderr
    assert "stalk: stopped" in down.stdout
    assert proc.wait(5) == 0
    assert time.monotonic() - began < 30
    assert gone(workers)
    again = stalk("down", "--data-dir", str(data_dir))
    assert again.returncode == 1 and again.stderr.startswith("stalk: error: no Stalk is running on data dir")


def test_attach_says_when_no_stack_runs(data_dir: Path) -> None:
    out = stalk("attach", "--data-dir", str(data_dir))
    assert out.returncode == 1
    assert out.stderr.strip() == f"stalk: error: no Stalk is running on data dir {data_dir}"


@pytest.mark.fault
def test_stack_process_killed_its_workers_end_and_history_stays(data_dir: Path) -> None:
    """SIGKILL of the stack process: its workers end (their watchdog pipe), and the next start still has
    the history of a task that ran before."""
    proc = start_up(data_dir)
    sent = stalk("submit", "--data-dir", str(data_dir), "demo.add", "--args", "[2, 3]", "--wait",
                 "--json")
    assert sent.returncode == 0, sent.stderr
    task_id = json.loads(sent.stdout)["task_id"]
    wait_until(lambda: task_id in stalk("tasks", "--data-dir", str(data_dir)).stdout, 20)
    time.sleep(1.5)  # the history writer's next batch
    workers = tree(proc.pid)[1:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    wait_until(lambda: gone(workers), 20)
    again = start_up(data_dir)
    try:
        listed = stalk("tasks", "--data-dir", str(data_dir))
        assert task_id in listed.stdout and "SUCCESS" in listed.stdout
    finally:
        assert stalk("down", "--data-dir", str(data_dir)).returncode == 0
        again.wait(10)


def two_views_see_the_same_processes(data_dir: Path) -> None:
    """Two panels on one stack (two RemoteStacks): the same processes, and both hear of a restart."""
    from stalk.embedded.service import RemoteStack

    one, two = RemoteStack.on_data_dir(data_dir), RemoteStack.on_data_dir(data_dir)
    try:
        assert [p.name for p in one.processes()] == [p.name for p in two.processes()]
        heard: dict[str, list] = {"one": [], "two": []}
        one.subscribe(heard["one"].append)
        two.subscribe(heard["two"].append)
        wait_until(lambda: one.feed.connected.is_set() and two.feed.connected.is_set(), 10)
        before = one.process("worker:default").pid
        one.restart_process("worker:default")
        restarted = [lambda view=view: any(p.name == "worker:default" and p.pid not in (None, before)
                                           for snap in heard[view] for p in snap) for view in heard]
        for seen in restarted:
            wait_until(seen, 30)
        wait_until(lambda: all(p.state.up for p in two.processes()), 60)
    finally:
        one.close()
        two.close()
