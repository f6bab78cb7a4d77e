"""Foreground: background threads step aside while a UI answers a key; never for long, never for
the holder itself, and not at all when nothing holds it."""

from __future__ import annotations

import threading

import pytest

import stalk.embedded.foreground as fg_module
from stalk.embedded.events import EventStore
from stalk.embedded.foreground import Foreground
from tests.test_events_search import sent


def in_thread(fn) -> threading.Event:
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_free_means_no_wait() -> None:
    fg = Foreground()
    assert in_thread(fg.step_aside).wait(5)
    assert fg.waited == 0.0 and not fg.held


@pytest.fixture
def long_stretch(monkeypatch) -> None:
    monkeypatch.setattr(fg_module, "LONGEST_STRETCH", 60.0)


def test_another_thread_waits_until_release_and_the_holder_never_does(long_stretch) -> None:
    fg = Foreground()
    fg.hold(30.0)
    assert fg.held
    fg.step_aside()  # the holder: returns at once
    done = in_thread(fg.step_aside)
    assert not done.wait(0.2)
    fg.release()
    assert done.wait(5)
    assert fg.waited >= 0.2


def test_a_hold_ends_by_itself() -> None:
    fg = Foreground()
    fg.hold(0.05)
    assert in_thread(fg.step_aside).wait(5)  # no release: the hold's own deadline
    assert not fg.held


def test_keys_held_down_hold_the_background_for_one_stretch_then_give_it_a_turn(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(fg_module.time, "monotonic", lambda: clock[0])
    fg = Foreground()
    held = []
    for _ in range(40):  # a key every 10 ms for 0.4 s, each holding 50 ms, never released
        fg.hold(0.05)
        held.append(fg.held)
        clock[0] += 0.01
    # 15 keys held (0.15 s), then 5 keys' time (0.05 s) free, then the next stretch
    assert held[:15] == [True] * 15 and held[15:20] == [False] * 5 and held[20:35] == [True] * 15


def test_ingest_from_another_thread_steps_aside_and_loses_nothing(monkeypatch, long_stretch) -> None:
    fg = Foreground()
    monkeypatch.setattr("stalk.embedded.events.store.FOREGROUND", fg)
    store = EventStore()
    fg.hold(30.0)
    store.ingest(sent("ui", 1.0))  # the holder's own ingest (eager mode on the UI thread) goes through
    done = in_thread(lambda: store.ingest_many([sent(f"t{i}", 2.0 + i) for i in range(50)]))
    assert not done.wait(0.2) and len(store) == 1
    fg.release()
    assert done.wait(5) and len(store) == 51


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_hold_of_nothing_holds_nothing(seconds: float) -> None:
    fg = Foreground()
    fg.hold(seconds)
    assert not fg.held
    assert in_thread(fg.step_aside).wait(5)
