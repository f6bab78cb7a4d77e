"""A broker call bounded by a short timeout for a scrape: one call in flight at a time on its own thread;
a scrape waits for it at most `timeout` s, then goes on without it (a broker that hangs costs a scrape
one timeout, never a thread per scrape)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.problem: str | None = None


class BoundedCall(Generic[T]):
    def __init__(self, call: Callable[[], T], timeout: float, name: str) -> None:
        self.call = call
        self.timeout = timeout
        self.name = name
        self._lock = threading.Lock()
        self._flight: _Flight[T] | None = None

    def __call__(self) -> tuple[T | None, str | None]:
        """(value, None), or (None, why not): the call failed, or did not answer within the timeout."""
        with self._lock:
            flight = self._flight
            if flight is None:
                flight = self._flight = _Flight()
                threading.Thread(target=self._run, args=(flight,), name=self.name, daemon=True).start()
        if not flight.done.wait(self.timeout):
            return None, f"no answer within {self.timeout:g} s"
        return flight.value, flight.problem

    def _run(self, flight: _Flight[T]) -> None:
        try:
            flight.value = self.call()
        except Exception as exc:
            flight.problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        with self._lock:
            self._flight = None
        flight.done.set()
