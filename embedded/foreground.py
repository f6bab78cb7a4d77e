"""Foreground: while a UI answers a key, the stack's background threads step aside.

CPython has one GIL and no thread priorities. A thread that wants the GIL takes it from the running
one after the switch interval, so while events arrive (ingestion, change notifications, the history
writer, live re-queries) a key's work on the UI thread ran at about half speed: bench/panel_load.py
measured key-to-repaint p50 12 ms on an idle store and 26 ms under 1,000 events/s on the same machine.

A UI holds the foreground for a key (`hold`) and lets go once the key's answer is painted (`release`).
Background threads call `step_aside()` between pieces of work: while the foreground is held by another
thread they wait (blocked, without the GIL), at most until the hold's deadline. Nothing is dropped:
events wait in the receiver's socket, changes in the store's batches. A hold lasts at most `seconds`,
and one unbroken stretch of holds (keys held down) at most LONGEST_STRETCH, after which background work
gets BACKGROUND_TURN before the next stretch. Nothing holds it unless a UI does: scripts and tests never wait.
"""

from __future__ import annotations

import threading
import time

LONGEST_STRETCH = 0.15  # s of unbroken holds (keys held down), then background work runs regardless...
BACKGROUND_TURN = 0.05  # ...for at least this long before a new stretch


class Foreground:
    def __init__(self) -> None:
        self._free = threading.Event()
        self._free.set()
        self._busy = False  # mirrors `not _free.is_set()`: read once per event ingested, a plain attribute
        self._until = 0.0  # monotonic time the current hold ends by itself
        self._since = 0.0  # monotonic time the current stretch of holds began
        self._turn_until = 0.0  # monotonic time until which a new stretch may not begin
        self._holder: int | None = None  # thread ident: it never waits for its own hold
        self.waited = 0.0  # s background threads spent stepping aside (the bench reads it)

    def hold(self, seconds: float) -> None:
        """Background threads wait from now until `release`, or `seconds` from now at the latest."""
        now = time.monotonic()
        if self._free.is_set() or now >= self._until:  # free, or the last hold ran out: a new stretch
            if now < self._turn_until:
                return  # the background's turn after a stretch as long as allowed
            self._since = now
        self._until = min(now + seconds, self._since + LONGEST_STRETCH)
        if self._until >= self._since + LONGEST_STRETCH:
            self._turn_until = self._until + BACKGROUND_TURN
        self._holder = threading.get_ident()
        self._busy = True
        self._free.clear()

    def release(self) -> None:
        self._busy = False
        self._free.set()

    @property
    def held(self) -> bool:
        return not self._free.is_set() and time.monotonic() < self._until

    def step_aside(self) -> None:
        """Wait while another thread holds the foreground (returns at once when it is free)."""
        if not self._busy or threading.get_ident() == self._holder:
            return
        left = self._until - time.monotonic()
        if left > 0:
            began = time.perf_counter()
            self._free.wait(left)
            self.waited += time.perf_counter() - began


FOREGROUND = Foreground()  # the process's one: the UI holds it, the stack's threads step aside for it
