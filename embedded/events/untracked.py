"""Task records the cyclic garbage collector does not walk.

A panel holds up to 100,000 TaskRecords, more than half of all GC-tracked objects, and every full
collection walked them all: 120-380 ms pauses of every thread (bench/panel_load.py). A record holds
only strings, numbers, None and its own progress dict / attempts list (tracked on their own), so it
can never be part of a reference cycle: reference counting frees it, and the collector may skip it.
`PyObject_GC_UnTrack` is CPython's public, stable-ABI call for exactly that.

The same goes for the big containers of such things: the store's id -> record dict and eviction order,
a sort index's entries. CPython marks a dict tracked again whenever it stores an object with GC
support (a tuple only while the tuple itself is tracked), so those are untracked after they grow."""

from __future__ import annotations

import ctypes


def _load():  # type: ignore[no-untyped-def]
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
