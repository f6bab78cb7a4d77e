"""Garbage-collector settings for a panel that holds up to 100,000 task records.

Full collections stop every thread, so their length is a key press's worst latency
(bench/panel_load.py). What keeps them short and out of the way:
- task records are not tracked by the collector at all (embedded/patches/cpython_gc_untrack.py);
- fewer young collections, so fewer full ones (p99 key-to-repaint 366 -> 240 ms with DataTable);
- once the stack is ready, everything alive then (modules, classes, widgets: ~76,000 objects) is
  collected once and frozen, so later full collections walk only what came after: 77 -> 23 ms.
  Garbage cycles made before that point are collected first; frozen objects are never freed, which
  only matters for start-up objects that live as long as the app anyway;
- the panel, not Python, chooses when the oldest generation is collected (`Collector`): just after a
  key's answer is on screen, while the user reads it, or when no one has typed for a while. Python
  would start one in the middle of a key (the ~45,000 objects Textual leaves in reference cycles
  every half minute: 50-140 ms)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

THRESHOLDS = (5_000, 20, 1_000_000)  # the third: Python never starts a full collection by itself
AFTER_INPUT = 0.06  # s after the last key: its answer is on screen (p99 under load ~50 ms)
QUIET = 1.0  # s without a key: no one is waiting for the screen
EVERY = 10.0  # s between full collections, at least: each walks the ~43,000 objects that are not frozen
# (25 ms, most of them Textual's cached strips) and frees ~1,500 a second (10 s: ~45 ms in all)
FORCE_AFTER = 30.0  # s: at the latest (someone holding a key down), as Python would
_tuned = False
_frozen = False


def tune() -> None:
    """Called by `stalk` before the app runs (tests and embedders keep Python's defaults)."""
    global _tuned
    gc.set_threshold(*THRESHOLDS)
    _tuned = True


def settle() -> None:
    """Freeze start-up objects once the stack is ready (only after `tune()`)."""
    global _frozen
    if _tuned and not _frozen:
        _frozen = True  # once
        gc.collect()
        gc.freeze()


def collector(clock: Callable[[], float] = time.monotonic) -> Collector | None:
    """The app's full-collection schedule, when `tune()` took Python's away (else None)."""
    return Collector(clock) if _tuned else None


class Collector:
    """When to collect the oldest generation; the app calls `saw_input` per key and `collect_if_due`
    AFTER_INPUT after the last key and every QUIET seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 collect: Callable[[], object] = lambda: gc.collect(2)) -> None:
        self.clock = clock
        self._collect = collect
        self.last_full = self.last_input = clock()
        self.collections = 0

    def saw_input(self) -> None:
        self.last_input = self.clock()

    def quiet_for(self) -> float:
        return self.clock() - self.last_input

    def collect_if_due(self, quiet: float) -> bool:
        """Collect now if EVERY has passed and no key came for `quiet` seconds, or FORCE_AFTER has."""
        now = self.clock()
        since = now - self.last_full
        if since < FORCE_AFTER and (since < EVERY or now - self.last_input < quiet):
            return False
        self._collect()
        self.last_full = self.clock()
        self.collections += 1
        return True
