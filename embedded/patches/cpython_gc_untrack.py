"""Overrides CPython's garbage-collector tracking: task records and the store's big containers are
objects the cyclic collector does not walk.

Calls `PyObject_GC_UnTrack` (CPython's C API, Include/objimpl.h; through `ctypes.pythonapi`) on
objects Python itself tracks: TaskRecords (stalk.embedded.events.fold), the store's id -> record dict
and eviction order, and a sort index's entries and sortedcontainers' sublists
(stalk.embedded.events.sort_index). Relies on CPython's rules for re-tracking (Objects/dictobject.c):
a dict is tracked again whenever it stores an object with GC support (a tuple only while the tuple
itself is tracked), so those containers are untracked again after they grow; an untracked object is
still freed by reference counting. On another implementation (no `ctypes.pythonapi`) nothing is
untracked and nothing else changes.

Written against CPython 3.11 (requires-python >= 3.11; checked on 3.11.7);
tests/test_upstream_canaries.py checks the call and the re-tracking rules.

What it buys: a panel holds up to 100,000 TaskRecords, more than half of all GC-tracked objects, and
every full collection walked them all: 120-380 ms pauses of every thread (bench/panel_load.py). A record
holds only strings, numbers, None and its own progress dict / attempts list (tracked on their own), so
it can never be part of a reference cycle: reference counting frees it, and the collector may skip it.
The containers: a full collection with 100,000 tasks and five sort indexes at rest 44 -> 17 ms
(sort_index.py; 32-55 -> 11-17 ms in commit 13e85aa).

If removed (`untrack` returning its argument untouched): correct still, but every full collection walks
the whole store again, and the panel's key-to-repaint p99 (bench/panel_load.py, target 50 ms) takes
those pauses.
"""

from __future__ import annotations

import ctypes
from typing import Any


def _load() -> Any:  # ctypes' function pointer, or None
    try:
        call = ctypes.pythonapi.PyObject_GC_UnTrack
    except (AttributeError, OSError):  # not CPython: records stay tracked, nothing else changes
        return None
    call.argtypes = [ctypes.py_object]
    call.restype = None
    return call


_UNTRACK = _load()


def untrack(obj: object) -> object:
    """`obj`, no longer walked by the cyclic GC (it must not be able to reach itself)."""
    if _UNTRACK is not None:
        _UNTRACK(obj)
    return obj
