"""Garbage-collector settings for a panel that holds up to 100,000 task records.

Full collections stop every thread, so their length is a key press's worst latency
(bench/panel_load.py). Three things keep them short:
- task records are not tracked by the collector at all (embedded/events/untracked.py);
- fewer young collections, so fewer full ones (p99 key-to-repaint 366 -> 240 ms with DataTable);
- once the stack is ready, everything alive then (modules, classes, widgets: ~76,000 objects) is
  collected once and frozen, so later full collections walk only what came after: 77 -> 23 ms.
  Garbage cycles made before that point are collected first; frozen objects are never freed, which
  only matters for start-up objects that live as long as the app anyway."""

from __future__ import annotations

import gc

THRESHOLDS = (5_000, 20, 20)
_tuned = False


def tune() -> None:
    """Called by `stalk` before the app runs (tests and embedders keep Python's defaults)."""
    global _tuned
    gc.set_threshold(*THRESHOLDS)
    _tuned = True


def settle() -> None:
    """Freeze start-up objects once the stack is ready (only after `tune()`)."""
    global _tuned
    if _tuned:
        _tuned = False  # once
        gc.collect()
        gc.freeze()
