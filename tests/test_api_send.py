"""The API serves from the start of a stack (before its broker), and its sends fail fast and definitely:
with the broker stopped, a send is a 503 "broker ... unreachable" within seconds and never goes out later."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import stalk.embedded.stack as stack_module
from stalk.embedded import ConfigError, Stack
from stalk.embedded.service import ApiError, StackClient

from .api_support import client_of
from .conftest import make_config

EAGER: dict[str, Any] = {"broker": {"mode": "eager"}, "beat": False}


def test_the_api_answers_before_the_broker_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = stack_module.start_broker

    def start_broker(config: Any, supervisor: Any) -> Any:
        api = stack.api
        assert api is not None and api.socket_path is not None
        client = StackClient(api.token, socket=str(api.socket_path))
        try:
            seen["health"] = client.get("/health")
            seen["stack"] = client.get("/stack")
            seen["processes"] = client.get("/processes")
            for path in ("/tasks", "/submit/context"):
                with pytest.raises(ApiError) as err:
                    client.get(path)
                seen[path] = err.value.status
        finally:
            client.close()
        return real(config, supervisor)

    monkeypatch.setattr(stack_module, "start_broker", start_broker)
    stack = Stack(make_config(tmp_path / "data", **EAGER))
    with stack:
        client = client_of(stack)
        try:
            assert client.get("/stack")["ready"] is True
            client.get("/tasks")  # the store is wired now
        finally:
            client.close()
    assert seen["health"] == {"status": "up"}
    assert seen["stack"]["ready"] is False and seen["stack"]["broker"] is None
    assert seen["processes"] == []
    assert seen["/tasks"] == 503 and seen["/submit/context"] == 503


def test_a_taken_port_fails_before_the_broker_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(stack_module, "start_broker", lambda *a: started.append(a))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        stack = Stack(make_config(tmp_path / "data", api={"port": port}, **EAGER))
        with pytest.raises(ConfigError, match=f"api.port = {port}"):
            stack.start()
    assert started == []
    assert not (stack.paths.state / "api.sock").exists()


@pytest.mark.procs
def test_a_send_to_a_stopped_broker_is_refused_at_once_and_never_goes_out(running_stack: Any) -> None:
    stack: Stack = running_stack(broker={"mode": "redis"}, beat=False)
    # a generous HTTP timeout tells "refused at once" from "held": a held send is ApiError(0), not a 503
    client = StackClient.on_data_dir(stack.paths.data_dir, timeout=30)
    assert client.get("/submit/broker") == {"ok": True}
    pid = stack.process("broker").pid
    assert pid is not None
    task_id = f"never-{uuid.uuid4()}"
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ApiError) as err:
            client.post("/submit", {"name": "demo.add", "args": [1, 2], "task_id": task_id})
        with pytest.raises(ApiError) as check:
            client.get("/submit/broker")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert err.value.status == 503 and check.value.status == 503
    assert err.value.message.startswith("broker ") and " unreachable: " in err.value.message, err.value.message
    sent = client.post("/submit", {"name": "demo.add", "args": [2, 2]})  # the broker is back: sends again
    assert stack.app.AsyncResult(sent["task_id"]).get(timeout=30) == 4
    time.sleep(1.0)
    assert stack.events is not None and stack.events.get(task_id) is None
    assert stack.app.AsyncResult(task_id).state == "PENDING"  # never ran
    client.close()
