"""Liveness decisions without processes: silence while the broker is away counts for nothing, a worker
that answers again is ready, and a solo/threads pool worker is never killed for silence."""

from __future__ import annotations

from stalk.embedded.config import SupervisorConfig
from stalk.embedded.supervisor import ChildSpec, ProcState, Supervisor
from stalk.embedded.supervisor.liveness import Liveness


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(monkeypatch, tmp_path, answers: list, never_restart: frozenset[str] = frozenset()):
    supervisor = Supervisor(SupervisorConfig(), tmp_path)
    child = supervisor.add(ChildSpec(name="worker:w", role="worker", argv=["true"], hostname="w@h"), start=False)
    child.state = ProcState.READY
    killed: list[str] = []
    monkeypatch.setattr(child, "kill_now", lambda: killed.append(child.spec.name))
    clock = FakeClock()
    monkeypatch.setattr("stalk.embedded.supervisor.liveness.time.monotonic", clock)
    liveness = Liveness(supervisor, lambda hosts: answers.pop(0), interval=5, restart_after=30,
                        never_restart=never_restart)
    return liveness, child, killed, clock


def test_silence_while_the_broker_is_away_counts_for_nothing(monkeypatch, tmp_path):
    answers: list = [set(), None, set(), set()]
    liveness, child, killed, clock = setup(monkeypatch, tmp_path, answers)
    liveness.check()
    assert child.state is ProcState.UNRESPONSIVE
    clock.now += 25
    liveness.check()  # no broker: nothing can be said
    clock.now += 25
    liveness.check()  # silent again, counted from here
    assert killed == []
    clock.now += 30
    liveness.check()
    assert killed == ["worker:w"]


def test_a_worker_that_answers_again_is_ready(monkeypatch, tmp_path):
    liveness, child, killed, clock = setup(monkeypatch, tmp_path, [set(), {"w@h"}])
    liveness.check()
    clock.now += 10
    liveness.check()
    assert child.state is ProcState.READY and killed == []


def test_a_pool_that_runs_tasks_in_its_loop_is_never_killed_for_silence(monkeypatch, tmp_path):
    answers: list = [set(), set()]
    liveness, child, killed, clock = setup(monkeypatch, tmp_path, answers, frozenset({"worker:w"}))
    liveness.check()
    clock.now += 120
    liveness.check()
    assert child.state is ProcState.UNRESPONSIVE and killed == []
