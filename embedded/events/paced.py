"""paced: an iterator that lets other threads run while C code walks it, and stops a walk nobody wants.

A walk of a sort index or of the search texts runs in C (map, filter, compress, islice): one call
that holds the GIL until it is done, 30 ms for 40,000 ids of a sort index that match a search late
(bench/panel_load.py: the UI thread waited for all of it). CPython only hands the GIL over between
bytecodes, so the walk draws its input through a generator that goes back to Python once per slice.

Between slices it also asks the query's `wanted` callback (set with `wanted_while`, per thread): a
live refresh whose filter a key has just changed gives up the store's lock within a slice, instead of
making the key's own query wait for a whole walk it no longer needs.

A quick query (the UI thread's own, for a key) is not paced: there the GIL handed over between slices
goes to the feeding and refreshing threads, and the key waits for them too (under load a paced walk on
the UI thread took twice as long as one held through).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
SLICE = 1024  # items per stretch of C: under 1 ms for the slowest walk (a sort index, out of cache)
_query = threading.local()


class Unwanted(Exception):
    """The query's caller no longer wants its answer (its `wanted` callback said so)."""


@contextmanager
def wanted_while(wanted: Callable[[], bool] | None, pace: bool = True) -> Iterator[None]:
    """Walks paced in this thread meanwhile raise Unwanted once `wanted()` is false; with `pace`
    false they are not paced at all (a quick query on the UI thread)."""
    before = getattr(_query, "wanted", None), getattr(_query, "pace", True)
    _query.wanted, _query.pace = wanted, pace
    try:
        yield
    finally:
        _query.wanted, _query.pace = before


def paced(items: Iterable[T], size: int = SLICE) -> Iterator[T]:
    """`items`, in order, paced unless this thread's query said not to (read when called)."""
    if not getattr(_query, "pace", True):
        return iter(items)
    return _sliced(iter(items), size, getattr(_query, "wanted", None))


def _sliced(it: Iterator[T], size: int, wanted: Callable[[], bool] | None) -> Iterator[T]:
    """The loop's backward jump is where another thread may take the GIL (`yield from` a list does
    not check for it, the `while` does)."""
    while chunk := list(islice(it, size)):
        if wanted is not None and not wanted():
            raise Unwanted("the query's answer is no longer wanted")
        yield from chunk
