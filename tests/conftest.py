"""Shared fixtures: isolated configs on temp data dirs, and a guard that no test leaves a process behind."""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from stalk.embedded import Stack, StackConfig, load_config
from stalk.embedded.broker.address import redis_py_url
from stalk.embedded.broker.fake_server import EmbeddedRedisServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_PASSWORD = "server-secret"  # of the `server` fixture


def make_config(data_dir: Path, **flags: Any) -> StackConfig:
    """A config that ignores the user's environment and config file."""
    flags.setdefault("data_dir", str(data_dir))
    flags.setdefault("flower", {"port": 0})  # the Flower-compatible API on a free port, never Flower's 5555
    return load_config(flags, environ={"STALK_CONFIG": ""})


@pytest.fixture
def config_factory(tmp_path: Path):
    def factory(**flags: Any) -> StackConfig:
        return make_config(tmp_path / "data", **flags)

    return factory


@pytest.fixture
def running_stack(config_factory) -> Iterator[Any]:
    """`running_stack(**flags)` starts a Stack that is stopped after the test."""
    stacks: list[Stack] = []

    def start(**flags: Any) -> Stack:
        stack = Stack(config_factory(**flags))
        stacks.append(stack)
        return stack.start(wait=True, timeout=60)

    yield start
    for stack in stacks:
        stack.stop()


def descendants() -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Every process a test started must be gone when it ends."""
    before = {p.pid for p in descendants()}
    yield
    deadline = time.monotonic() + 15
    left = [p for p in descendants() if p.pid not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in descendants() if p.pid not in before]
    for proc in left:
        proc.kill()
    assert not left, f"processes left behind: {[(p.pid, p.cmdline()[:4]) for p in left]}"


# -- the quick lane starts no process -----------------------------------------------------------

#: What a quick-lane test tried to start (the argv, or the call's name); pytest_runtest_makereport reads it.
SPAWNED: list[str] = []


def is_quick_lane(config: pytest.Config) -> bool:
    """True when the run leaves `procs` tests out (`dev.py test --quick`, `-m "not procs ..."`, or
    STALK_QUICK=1): then no test may start a process."""
    if os.environ.get("STALK_QUICK") == "1":
        return True
    markexpr = config.getoption("markexpr", "") or ""
    if "procs" not in markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "procs")
    except Exception:  # a private API: fall back to the plain text
        return "not procs" in markexpr


def refuse_spawn(what: Any) -> None:
    SPAWNED.append(str(what))
    raise AssertionError(f"the quick lane starts no process ({what}): mark this test procs")


def forbid_spawning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a test could start a process raises (and is recorded, should the code under test catch
    it): subprocess (and asyncio's), multiprocessing, os.fork / posix_spawn / system / spawn*."""
    real_execute = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> Any:
        refuse_spawn(args if isinstance(args, str) else list(args)[:4])
        return real_execute(self, args, *rest, **kwargs)  # not reached

    def refuse(name: str) -> Any:
        return lambda *args, **kwargs: refuse_spawn(f"{name}{tuple(args)[:2]}")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse("_posixsubprocess.fork_exec"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the embedded broker (the `server` fixture: a real redis-protocol server on a loopback
    port) is a `procs` test, as one on redis-server is: the quick lane leaves it to the full suite."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("procs"):
            item.add_marker(pytest.mark.procs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    """In the quick lane, from the test's setup (module fixtures included) to its teardown, starting a
    process fails the test. Only while a test runs: pytest's and xdist's own machinery is untouched."""
    if not is_quick_lane(item.config) or item.get_closest_marker("procs") or item.get_closest_marker("fault"):
        return (yield)
    SPAWNED.clear()
    with pytest.MonkeyPatch.context() as monkeypatch:
        forbid_spawning(monkeypatch)
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, Any]:
    """A spawn the code under test caught (a supervisor retries, a thread logs it) still fails the test."""
    report = yield
    if SPAWNED:
        spawned, SPAWNED[:] = list(SPAWNED), []
        if report.passed:
            report.outcome = "failed"
            report.longrepr = f"the quick lane starts no process, this test tried {spawned}: mark it procs"
    return report


def stalk_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stalk", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
    env["STALK_CONFIG"] = ""
    env["STALK_FLOWER_PORT"] = "0"  # a stack a test starts never takes Flower's 5555
    env.update(extra)
    return env


def wait_until(predicate, timeout: float = 30.0, every: float = 0.1):
    """The first truthy value of `predicate()`; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


@contextmanager
def module_stack(data_dir: Path, env: dict[str, str] | None = None, **flags: Any) -> Iterator[Stack]:
    """A started Stack for a module-scoped fixture, with `env` set for its children (restored after);
    fails if any process it started outlives it."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    before = {p.pid for p in descendants()}
    try:
        with Stack(make_config(data_dir, **flags)) as running:
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert not [p for p in descendants() if p.pid not in before]


def broker_redis(url: str, db: int | None = None, **kwargs: Any) -> redis.Redis:
    """A redis-py client on a Stalk broker URL (`redis+socket://` or `redis://`), on `db` when given."""
    return redis.Redis.from_url(redis_py_url(url, db), **kwargs)


def server_url(server: EmbeddedRedisServer) -> str:
    """The `server` fixture's redis URL, password included."""
    return f"redis://:{SERVER_PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture
def server() -> Iterator[EmbeddedRedisServer]:
    """The embedded broker alone (a redis-protocol server on a free loopback port), password SERVER_PASSWORD."""
    srv = EmbeddedRedisServer(0, SERVER_PASSWORD)
    srv.start()
    yield srv
    srv.stop()
