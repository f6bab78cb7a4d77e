"""Full garbage collections run when the panel chooses: after a key's answer, or when no one types."""

from __future__ import annotations

import asyncio
import time

import pytest

from stalk.panel import gc_tuning
from stalk.panel.gc_tuning import AFTER_INPUT, EVERY, FORCE_AFTER, QUIET, Collector

from .conftest import SIZE
from .harness import app_for, settle, sync


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_collection_waits_for_its_interval_and_a_quiet_keyboard_unless_overdue():
    clock, runs = Clock(), []
    collector = Collector(clock, collect=lambda: runs.append(clock.now))
    clock.now += EVERY / 2
    assert not collector.collect_if_due(AFTER_INPUT)  # too soon after the last one
    clock.now += EVERY
    collector.saw_input()
    clock.now += AFTER_INPUT / 2
    assert not collector.collect_if_due(AFTER_INPUT)  # a key's answer may still be on its way
    clock.now += AFTER_INPUT
    assert not collector.collect_if_due(QUIET)  # the idle check wants a longer silence
    assert collector.collect_if_due(AFTER_INPUT)
    assert runs == [clock.now]
    for _ in range(int(FORCE_AFTER / 0.02) + 1):  # someone holds a key down: at the latest, forced
        clock.now += 0.02
        collector.saw_input()
        if collector.collect_if_due(AFTER_INPUT):
            break
    assert len(runs) == 2 and runs[1] - runs[0] >= FORCE_AFTER


def test_untuned_python_keeps_its_own_schedule(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(gc_tuning, "_tuned", False)
    assert gc_tuning.collector() is None


@sync
async def test_the_panel_collects_after_a_keys_answer_not_during_a_burst(eager_stack, monkeypatch):
    monkeypatch.setattr(gc_tuning, "_tuned", True)  # as `stalk` runs; Python's thresholds untouched
    after = 0.4  # s: longer than a Pilot key press takes on a loaded machine
    monkeypatch.setattr(gc_tuning, "AFTER_INPUT", after)
    full: list[float] = []
    app = app_for(eager_stack)
    collector = app._collector
    assert collector is not None
    real = collector._collect

    def collect() -> object:  # the real collection, timed (Python's own ones may run too: untuned)
        full.append(time.monotonic())
        return real()

    collector._collect = collect
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        collector.last_full -= EVERY  # an interval has passed
        full.clear()
        burst_start = time.monotonic()
        for _ in range(6):  # keys closer together than AFTER_INPUT: nobody collects meanwhile
            await pilot.press("down")
            await asyncio.sleep(after / 4)
        last_key = collector.last_input
        assert [t for t in full if t < last_key] == []
        deadline = time.monotonic() + 10
        while not full and time.monotonic() < deadline:  # the collection AFTER_INPUT after the last key
            await asyncio.sleep(0.02)
        assert len(full) == 1 and full[0] - last_key >= after * 0.9
        assert full[0] > burst_start and collector.collections == 1
        await pilot.press("down")
        await asyncio.sleep(after * 2)
        assert len(full) == 1  # the next one only after EVERY
