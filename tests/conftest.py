"""Shared fixtures: isolated configs on temp data dirs, and a guard that no test leaves a process behind."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from stalk.embedded import Stack, StackConfig, load_config
from stalk.embedded.broker.fake_server import EmbeddedRedisServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_PASSWORD = "server-secret"  # of the `server` fixture


def make_config(data_dir: Path, **flags: Any) -> StackConfig:
    """A config that ignores the user's environment and config file."""
    flags.setdefault("data_dir", str(data_dir))
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


def stalk_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stalk", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "CELERY_"))}
    env["STALK_CONFIG"] = ""
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
