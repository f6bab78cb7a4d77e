"""Issue #26, finding 3: a data dir another user could write into is refused, nothing planted in it is
followed, only Stalk's own children are killed at start, and what Stalk writes is private.

The second local user is `nobody` (uid 65534), via setpriv; the tests run as root."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import psutil
import pytest

from stalk.embedded import Stack

from .conftest import ROOT, clean_env, make_config, stalk_cmd

pytestmark = pytest.mark.procs

NOBODY = 65534
VICTIM_TEXT = "the victim's own content\n"


def as_nobody(script: str) -> None:
    """Run `script` (sh) as the second user."""
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "sh", "-ec", script],
                   check=True, timeout=30)


@pytest.fixture
def shared_dir():
    """A dir both users can reach (pytest's tmp_path is root's own, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="stalk-t26-", dir="/tmp"))
    path.chmod(0o1777)  # as /tmp
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stalk_up(data_dir: Path, *args: str, until: str = "stack is up", timeout: float = 90) -> tuple[int, str]:
    """`stalk up` on `data_dir`: its exit code and output. A stack that comes up is stopped (Ctrl-C) once it
    printed `until`, or after `timeout` seconds."""
    proc = subprocess.Popen(stalk_cmd("up", "--data-dir", str(data_dir), "--broker", "redis", *args), cwd=ROOT,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    stopper = threading.Timer(timeout, proc.send_signal, (signal.SIGINT,))
    stopper.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if until in line:
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        stopper.cancel()
    return proc.returncode, "".join(seen)


def sqlite_victim(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("planted", [
    "state/redis.conf", "state/status.tmp", "state/children.tmp", "stalk.pid", "logs/beat.log",
    "logs/stalk.log", "state/history.sqlite3", "state/beat-runs.sqlite3", "state/quota.sqlite3",
])
def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path, planted):
    data = tmp_path / "data"
    (data / "state").mkdir(parents=True, mode=0o700)
    (data / "logs").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    if planted.endswith(".sqlite3"):
        before = sqlite_victim(victim)
    else:
        victim.write_text(VICTIM_TEXT)
        before = victim.read_bytes()
    victim.chmod(0o644)
    (data / planted).symlink_to(victim)

    code, out = stalk_up(data)

    assert victim.read_bytes() == before
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert code != 0
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("stalk: error: refusing data dir:") and str(data / planted) in lines[0], out
    assert "symbolic link" in lines[0]


def test_a_symlink_planted_by_another_user_in_a_dir_left_open_is_refused(shared_dir):
    """The user's own data dir was left 0777 (umask 0): `nobody` planted a link in it."""
    data = shared_dir / "data"
    old = os.umask(0)
    try:
        (data / "logs").mkdir(parents=True, mode=0o777)
    finally:
        os.umask(old)
    victim = shared_dir / "victim"
    victim.write_text(VICTIM_TEXT)
    as_nobody(f"ln -s {victim} {data}/logs/beat.log")

    code, out = stalk_up(data)

    assert victim.read_text() == VICTIM_TEXT
    assert code != 0 and len(out.strip().splitlines()) == 1, out
    assert "refusing data dir" in out and "beat.log" in out
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # its mode fixed on the way


def test_a_data_dir_of_another_user_is_refused(shared_dir):
    """`nobody` made the data dir (0777) and chose its broker password: Stalk must not use it."""
    data = shared_dir / "data"
    as_nobody(f"umask 0; mkdir -m 0777 {data}; echo chosen-by-nobody > {data}/broker.password")

    code, out = stalk_up(data)

    assert code != 0
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "refusing data dir" in lines[0] and "belongs to user nobody" in lines[0], out
    assert sorted(p.name for p in data.iterdir()) == ["broker.password"]  # nothing written there


def test_a_data_dir_of_the_users_own_open_to_others_is_fixed_and_said(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)

    code, out = stalk_up(data, "--no-beat", until="set to 0700")

    assert code == 0, out
    assert "stack is up" in out
    assert f"{data} was mode 0777 (writable by other users): set to 0700" in out
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


@pytest.fixture
def bystander():
    """An unrelated process in its own process group, as any of the user's programs."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("recorded", ["no create_time", "another create_time"])
def test_children_json_naming_an_unrelated_process_does_not_kill_it(tmp_path, bystander, recorded):
    config = make_config(tmp_path / "data", broker={"mode": "eager"})
    entry: dict[str, float] = {"pid": bystander.pid}
    if recorded == "another create_time":
        entry["create_time"] = psutil.Process(bystander.pid).create_time() - 1000
    config.paths.state.mkdir(parents=True, mode=0o700)
    config.paths.children_file.write_text(json.dumps({"worker:default": entry}))

    stack = Stack(config).start(wait=True, timeout=60)
    try:
        assert stack.stale_killed == []
        assert bystander.poll() is None
    finally:
        stack.stop()
    assert bystander.poll() is None


def test_what_stalk_writes_is_private(tmp_path):
    """Files 0600, dirs 0700: Stalk's own (logs, history, pid, status), redis-server's and Celery's
    (worker statedb, beat schedule), whatever the user's umask."""
    config = make_config(tmp_path / "data", broker={"mode": "redis"})
    old = os.umask(0o022)
    try:
        stack = Stack(config).start(wait=True, timeout=90)
        try:
            files = {p.relative_to(config.paths.data_dir).as_posix() for p in config.paths.data_dir.rglob("*")}
            assert {"stalk.pid", "logs/stalk.log", "state/history.sqlite3", "state/status.json"} <= files
            assert any(f.startswith("state/worker-") for f in files), files
            assert any(f.startswith("redis/") for f in files), files
            loose = {f"{p}: {stat.S_IMODE(p.lstat().st_mode):04o}"
                     for p in [config.paths.data_dir, *config.paths.data_dir.rglob("*")]
                     if stat.S_IMODE(p.lstat().st_mode) & 0o077}
            assert not loose
        finally:
            stack.stop()
        assert os.umask(0o022) == 0o022  # the user's umask is given back
    finally:
        os.umask(old)



WRITER_APP = '''
from celery import Celery

app = Celery("writer")


@app.task(name="writer.write")
def write(path):
    open(path, "w").write("x")
    return path
'''


def test_a_file_a_task_writes_keeps_the_users_umask(tmp_path):
    """Only Stalk's own files are private: what the user's task writes has the user's usual mode."""
    (tmp_path / "writer.py").write_text(WRITER_APP)
    config = dataclasses.replace(make_config(tmp_path / "data", app="writer:app", broker={"mode": "redis"},
                                             beat=False), app_dir=tmp_path)
    out = tmp_path / "written-by-a-task"
    old = os.umask(0o022)
    try:
        with Stack(config) as stack:
            assert stack.app.send_task("writer.write", args=[str(out)]).get(timeout=60) == str(out)
            assert stat.S_IMODE(stack.paths.pid_file.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_data_dir_in_a_dir_others_can_write_is_refused(shared_dir):
    """Another user could rename the data dir away and put one of their own in its place."""
    open_dir = shared_dir / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # no sticky bit, unlike /tmp

    code, out = stalk_up(open_dir / "data")

    assert code != 0 and len(out.strip().splitlines()) == 1, out
    assert f"is in {open_dir}, which other users can write into (mode 0777)" in out


def test_a_status_file_of_another_user_is_not_believed(shared_dir):
    """`stalk env` must not hand out a broker another user wrote into a status file."""
    data = shared_dir / "data"
    data.mkdir(mode=0o711)
    (data / "state").mkdir()
    (data / "state").chmod(0o777)
    status = {"pid": os.getpid(), "broker": {"mode": "redis", "broker_url": "redis://:x@evil.example:1/0"},
              "processes": []}
    as_nobody(f"umask 022; echo '{json.dumps(status)}' > {data}/state/status.json")

    result = subprocess.run(stalk_cmd("env", "--data-dir", str(data)), cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=60)

    assert "evil.example" not in result.stdout + result.stderr
    assert result.returncode != 0 and "no Stalk is running" in result.stderr
