"""StackRuntime's start phase: ready only once every process the stack will run is registered and up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stalk.panel import runtime
from stalk.panel.messages import PhaseChanged


def proc(name: str, up: bool = True) -> Any:
    return SimpleNamespace(name=name, state=SimpleNamespace(up=up))


class BrokerFirst:
    """A stack whose broker child reports up while start() has not registered the workers yet, as the
    supervisor's thread can (a redis-server is up in ~10 ms; the workers are added after the event
    receiver and the control API start)."""

    def __init__(self, _config: Any) -> None:
        self.broker = None
        self.mode = "redis"
        self.app = None
        self.events = None
        self._listeners: list = []
        self._procs = [proc("broker")]

    def subscribe(self, fn: Any) -> Any:
        self._listeners.append(fn)
        return lambda: None

    def start(self, wait: bool = False) -> None:
        self.broker = SimpleNamespace(mode="redis")
        for fn in self._listeners:
            fn([proc("broker")])  # only the broker so far, and it is up
        self._procs = [proc("broker"), proc("worker:default", up=False)]
        for fn in self._listeners:
            fn(list(self._procs))

    def processes(self) -> list:
        return list(self._procs)


class Target:
    def __init__(self) -> None:
        self.phases: list[str] = []

    def post_message(self, message: Any) -> None:
        if isinstance(message, PhaseChanged):
            self.phases.append(message.phase.kind)


def test_a_broker_up_before_the_workers_are_registered_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI saw `stalk demo --ui` send its load at a 'ready' that came with the broker alone: the workers
    and the event receiver were still starting, and the sent tasks' events were missed."""
    monkeypatch.setattr(runtime, "Stack", BrokerFirst)
    target = Target()
    rt = runtime.StackRuntime(target, config=None, stack=None, load=runtime.DemoLoad(rate=1))  # type: ignore[arg-type]
    started: list = []
    monkeypatch.setattr(rt, "_start_load", lambda: started.append(True))
    rt.start()
    assert "ready" not in target.phases and not started
    rt.stack._procs = [proc("broker"), proc("worker:default")]  # type: ignore[union-attr]
    rt._on_processes(rt.stack.processes())  # type: ignore[union-attr]
    assert target.phases[-1] == "ready" and started == [True]
    rt._on_processes(rt.stack.processes())  # type: ignore[union-attr]
    assert started == [True]  # once
