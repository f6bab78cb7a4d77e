"""paced: an iterator that lets other threads run while C code walks it.

A walk of a sort index or of the search texts runs in C (map, filter, compress, islice): one call
that holds the GIL until it is done, 30 ms for 40,000 ids of a sort index that match a search late
(bench/panel_load.py: the UI thread waited for all of it). CPython only hands the GIL over between
bytecodes, so the walk draws its input through a generator that goes back to Python once per slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
SLICE = 1024  # items per stretch of C: under 1 ms for the slowest walk (a sort index, out of cache)


def paced(items: Iterable[T], size: int = SLICE) -> Iterator[T]:
    """`items`, in order; the loop's backward jump is where another thread may take the GIL
    (`yield from` a list does not check for it, the `while` does)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield from chunk
