"""The single-file `stalk` binary, used the way a user would: no Python on PATH, only the binary.

The binary is built once per set of sources by packaging/build.py (cached in build/binary/<key>/);
the first run of this module builds it (a few minutes on 2 cores). Each test starts `stalk up`
headless, submits demo.add from outside through a small Celery client on the broker URL the stack
publishes in its status file, calls the stack's API on its Unix socket, and checks that shutting down
leaves no process and no unpacked onefile directory behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from celery import Celery

from stalk.embedded.celery_app import stalk_settings
from stalk.embedded.config import find_redis_server
from stalk.embedded.paths import StackPaths
from stalk.embedded.service import StackClient
from stalk.embedded.status_file import read_status
from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("binary")

UP_STATES = ("ready", "running")


def uses_binary(test):
    """Real processes, slow, and time for the first such test to build the binary."""
    return pytest.mark.procs(pytest.mark.slow(pytest.mark.timeout(1800)(test)))


@pytest.fixture(scope="session")
def binary_build() -> Path:
    """The cached build directory (build/binary/<key>/), built now if the sources changed."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed: pip install -e '.[test]' (or '.[build]')")
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--print-path"],
                            capture_output=True, text=True, timeout=1700, check=False)
    if result.returncode != 0:
        pytest.fail(f"building the binary failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def user_env(binary_build: Path, tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only `stalk`: no python, no redis-server, no celery."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "stalk").symlink_to(binary_build / "stalk")
    (tmp_path / "home").mkdir()
    (tmp_path / "unpack").mkdir()
    return {"PATH": str(bin_dir), "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
            "TMPDIR": str(tmp_path / "unpack"), "STALK_CONFIG": ""}


@uses_binary
def test_binary_runs_with_no_python_on_path(user_env: dict[str, str]) -> None:
    path = user_env["PATH"]
    assert os.listdir(path) == ["stalk"]
    result = subprocess.run([f"{path}/stalk", "--help"], env=user_env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout and "up" in result.stdout


class UpProcess:
    """`stalk up` from the binary, its output in a file, and the status its stack publishes."""

    def __init__(self, env: dict[str, str], data_dir: Path, mode: str) -> None:
        self.paths = StackPaths(data_dir)
        self.output = data_dir.parent / "up.log"
        argv = [f"{env['PATH']}/stalk", "up", "--broker", mode, "--data-dir", str(data_dir)]
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=data_dir.parent, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        logs = sorted(self.paths.logs.glob("*.log")) if self.paths.logs.is_dir() else []
        tails = "".join(f"\n--- {p.name}\n" + "\n".join(p.read_text()[-1500:].splitlines()[-15:]) for p in logs)
        return self.output.read_text(errors="replace") + tails

    def wait_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"stalk up exited with {self.proc.returncode}:\n{self.text()}")
            status = read_status(self.paths.state)
            procs = (status or {}).get("processes") or []
            if procs and all(p["state"] in UP_STATES for p in procs) and "stack is up" in self.text():
                return status
            time.sleep(0.2)
        pytest.fail(f"stack not ready within {timeout:.0f} s:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"stalk up did not stop within 60 s:\n{self.text()}")


@pytest.fixture
def stalk_up(user_env: dict[str, str], tmp_path: Path) -> Iterator:
    started: list[UpProcess] = []

    def start(mode: str) -> UpProcess:
        started.append(UpProcess(user_env, tmp_path / "data", mode))
        return started[-1]

    yield start
    for up in started:
        up.stop()


def run_demo_add(status: dict, password_file: Path) -> int:
    """Submit demo.add(2, 3) from outside, as any Celery client of the stack's broker would."""
    broker = status["broker"]
    assert urlsplit(broker["broker_url"]).password == password_file.read_text().strip()
    client = Celery("binary-probe", set_as_current=False)
    client.conf.update(stalk_settings(broker["broker_url"], broker["backend_url"], 3600))
    try:
        return client.send_task("demo.add", (2, 3), queue="default").get(timeout=60)
    finally:
        client.close()


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def bundled_redis(build: Path) -> bool:
    return json.loads((build / "build.json").read_text())["redis_server_bundled"]


@uses_binary
@pytest.mark.parametrize("mode", ["embedded", "redis"])
def test_binary_stack_runs_demo_add_and_stops_clean(mode: str, stalk_up, user_env: dict[str, str],
                                                    binary_build: Path) -> None:
    if mode == "redis" and not bundled_redis(binary_build):
        pytest.skip("the build machine had no redis-server to bundle (install redis-server and rebuild)")
    up = stalk_up(mode)
    status = up.wait_ready()
    assert status["broker"]["mode"] == mode
    workers = [p for p in status["processes"] if p["role"] == "worker"]
    assert workers and any(p["role"] == "beat" for p in status["processes"])
    # prefork: each worker (launcher -> Python -> pool child) has a pool process of its own
    assert all(len(tree(p["pid"])) >= 3 for p in workers), f"no prefork pool: {[tree(p['pid']) for p in workers]}"
    if mode == "redis":
        assert_bundled_redis(status["broker"]["pid"])

    assert run_demo_add(status, up.paths.password_file) == 5
    assert_serves_its_api(up.paths.data_dir, mode)

    assert up.stop() == 0, up.text()
    assert "stopping" in up.text()
    assert read_status(up.paths.state) is None
    assert not os.listdir(user_env["TMPDIR"]), "onefile unpack dirs left behind"


def assert_serves_its_api(data_dir: Path, mode: str) -> None:
    """The frozen stack's API (FastAPI, pydantic, uvicorn inside the binary) answers a client here."""
    with StackClient.on_data_dir(data_dir) as api:
        assert api.get("/health") == {"status": "up"}
        assert api.get("/stack")["mode"] == mode
        assert any(p["name"].startswith("worker") for p in api.get("/processes"))


def assert_bundled_redis(pid: int) -> None:
    """The broker is the redis-server inside the binary, loading its libraries from there too."""
    proc = psutil.Process(pid)
    exe = Path(proc.exe())
    assert exe.name == "redis-server" and exe.parent.name.startswith("_MEI"), exe
    libs = {Path(m.path) for m in proc.memory_maps() if ".so" in m.path}
    jemalloc = [p for p in libs if p.name.startswith("libjemalloc")]
    assert all(p.parent == exe.parent for p in jemalloc), sorted(map(str, libs))


def test_frozen_binary_prefers_its_own_redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a frozen binary the bundled redis-server (in sys._MEIPASS) wins over one on PATH."""
    bundle, elsewhere = tmp_path / "_MEI123", tmp_path / "usr-bin"
    for folder in (bundle, elsewhere):
        folder.mkdir()
        (folder / "redis-server").write_text("#!/bin/sh\n")
        (folder / "redis-server").chmod(0o755)
    monkeypatch.setenv("PATH", str(elsewhere))
    assert find_redis_server() == str(elsewhere / "redis-server")  # not frozen: PATH only
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert find_redis_server() == str(bundle / "redis-server")
    assert find_redis_server(str(elsewhere / "redis-server")) == str(elsewhere / "redis-server")  # flag wins
