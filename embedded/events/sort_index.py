"""SortIndex: task ids kept in one sort key's order, so a sorted query reads the first rows it needs.

Sorting 100,000 records for every refresh of a view sorted by name or runtime costs 7-14 ms (twice
that while events arrive); walking an index kept in order and stopping at the view's limit costs
under 1 ms. The index is updated with the ids of the tasks that changed (as the search texts are) and
may still name evicted tasks: readers skip ids the store no longer holds, and `prune` drops them in
bulk. Ties go by arrival (as `sort_records` sorts); descending is ascending read backwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from operator import itemgetter

from sortedcontainers import SortedList

from stalk.embedded.events.paced import paced
from stalk.embedded.events.records import ARRIVAL, TaskRecord
from stalk.embedded.patches import untrack

Entry = tuple[object, int, str]  # (sort value, TaskRecord.arrival, task id)
_value, _task_id = itemgetter(0), itemgetter(2)
SINCE_KEPT = 20_000  # changed ids tracked since matches were remembered, then they are forgotten


class Remembered:
    """A search's matches in the index's order (ascending), and the ids that changed since: those
    are no longer placed right in `ids` (or are new), and are read again."""

    __slots__ = ("needle", "ids", "since")

    def __init__(self, needle: str, ids: list[str]) -> None:
        self.needle, self.ids, self.since = needle, ids, set[str]()
        for part in (ids, self.since, self):  # strings only: the collector need not walk them
            untrack(part)


class SortIndex:
    def __init__(self, sort_key: str, key: Callable[[TaskRecord], object],
                 records: Iterable[TaskRecord]) -> None:
        """Built from records; may run outside the store's lock on a copy of its records, then
        catch up with `update` under it."""
        self.sort_key = sort_key
        self._key = key
        entries = [(key(rec), rec.arrival, rec.task_id) for rec in sorted(records, key=ARRIVAL)]
        entries.sort(key=_value)  # stable, so ties stay in arrival order: the tuples' order, at half the cost
        self._entries: dict[str, Entry] = {entry[2]: entry for entry in entries}
        self._sorted = _presorted(entries)
        self._untracked = 0
        self._untrack()
        self.remembered: Remembered | None = None  # the last search whose matches were all put in order

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, tasks: Mapping[str, TaskRecord], changed: Iterable[str]) -> None:
        """Re-place the changed tasks (ids the store no longer holds are dropped)."""
        entries, ordered, key = self._entries, self._sorted, self._key
        if self.remembered is not None:
            since = self.remembered.since
            since.update(changed)
            if len(since) > SINCE_KEPT:
                self.remembered = None
        for task_id in changed:
            old = entries.get(task_id)
            rec = tasks.get(task_id)
            if rec is None:
                if old is not None:
                    ordered.remove(entries.pop(task_id))
                continue
            new = (key(rec), rec.arrival, task_id)
            if old is not None:
                if old == new:
                    continue
                ordered.remove(old)
            untrack(new)  # a tracked value would make the dict tracked again
            entries[task_id] = new
            ordered.add(new)
        if len(ordered._lists) != self._untracked:
            self._untrack()

    def _untrack(self) -> None:
        """What the index holds is plain values: tuples of strings and numbers, the dict and the sorted
        list's sublists of them. Nothing there can reach itself, so the collector need not walk it: a
        full collection walked 200,000 entries per index (bench/panel_load.py: full collections at rest
        44 -> 17 ms with five indexes). sortedcontainers 2.4 keeps its sublists in `_lists`; a split
        adds one, hence the count."""
        lists = self._sorted._lists
        for container in (self._entries, lists, self._sorted._maxes, *lists):
            untrack(container)
        self._untracked = len(lists)

    def ids(self, reverse: bool) -> Iterator[str]:
        """Task ids in order, lazily (the caller holds the store's lock while it reads), paced."""
        return map(_task_id, paced(reversed(self._sorted) if reverse else iter(self._sorted)))

    def in_order(self, task_ids: Iterable[str], reverse: bool, needle: str | None = None) -> Iterator[str]:
        """`task_ids` in the index's order (as `ids` walks it), sorted by their entries: tuples
        compared in C, no key function and no record read per id (ids it does not hold are left out).
        With `needle` (they are all its matches) they are remembered for `matching`."""
        ordered = list(map(_task_id, sorted(filter(None, map(self._entries.get, task_ids)))))
        if needle is not None:
            self.remembered = Remembered(needle, ordered)
        return reversed(ordered) if reverse else iter(ordered)

    def matching(self, needle: str) -> Remembered | None:
        """Remembered matches that hold every match of `needle` (it contains their needle)."""
        remembered = self.remembered
        return remembered if remembered is not None and remembered.needle in needle else None

    def merged(self, head: list[str], extra: Iterable[str], reverse: bool, limit: int | None) -> list[str]:
        """The first `limit` of `head` (ids in order) and `extra` (ids in no order), in order."""
        entries = self._entries
        both = sorted(filter(None, map(entries.get, [*head, *extra])), reverse=reverse)
        return list(map(_task_id, both[:limit]))

    def valued(self, values: Iterable[str], reverse: bool) -> Iterator[str]:
        """Ids of the tasks whose sort value is one of `values`, in order, lazily, paced: each value's run
        of entries found by bisection (a state filter on a view sorted by state reads only its rows)."""
        runs = (self._sorted.irange((value,), (value, math.inf), reverse=reverse)
                for value in sorted(set(values), reverse=reverse))
        return map(_task_id, paced(chain.from_iterable(runs)))

    def first_of(self, task_ids: Iterable[str], reverse: bool, limit: int | None) -> list[str]:
        """The first `limit` of `task_ids` in the index's order (as `ids` walks it): their entries
        sorted in C (ids it does not hold are left out). Not a heap of `limit`: ids come in about the
        order they entered their state, often the index's too (failures by runtime: all ties), where
        a sort is nearly free and a heap replaces its top at every id (13,700 ids: 2 vs 11 ms)."""
        found = sorted(filter(None, map(self._entries.get, task_ids)), reverse=reverse)
        return list(map(_task_id, found[:limit]))

    def stale(self, size: int) -> bool:
        """Holds many more ids than a store of `size` tasks: evicted tasks left behind."""
        return len(self._entries) > size + size // 4 + 100

    def prune(self, tasks: Mapping[str, TaskRecord]) -> None:
        """Drop the ids the store no longer holds (one pass, order kept)."""
        kept = [entry for entry in self._sorted if entry[2] in tasks]
        self._entries = {entry[2]: entry for entry in kept}
        self._sorted = _presorted(kept)
        self.remembered = None
        self._untrack()


def _presorted(entries: list[Entry]) -> SortedList:
    """A SortedList of entries already in order. SortedList(entries) would sort them again: 12-20 ms
    for 100,000, holding the GIL (every other thread, the UI's too, waits). Its sublists are cut as
    its own `update` cuts them into an empty list (sortedcontainers 2.4)."""
    out = SortedList()
    load = out._load
    out._lists = [entries[pos:pos + load] for pos in range(0, len(entries), load)]
    out._maxes = [sublist[-1] for sublist in out._lists]
    out._len = len(entries)
    return out
