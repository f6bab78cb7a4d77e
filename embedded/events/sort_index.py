"""SortIndex: task ids kept in one sort key's order, so a sorted query reads the first rows it needs.

Sorting 100,000 records for every refresh of a view sorted by name or runtime costs 7-14 ms (twice
that while events arrive); walking an index kept in order and stopping at the view's limit costs
under 1 ms. The index is updated with the ids of the tasks that changed (as the search texts are) and
may still name evicted tasks: readers skip ids the store no longer holds, and `prune` drops them in
bulk. Ties go by arrival (as `sort_records` sorts); descending is ascending read backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter

from sortedcontainers import SortedList

from .records import TaskRecord
from .untracked import untrack

Entry = tuple[object, int, str]  # (sort value, TaskRecord.arrival, task id)
_task_id = itemgetter(2)


class SortIndex:
    def __init__(self, sort_key: str, key: Callable[[TaskRecord], object],
                 items: Iterable[tuple[str, TaskRecord]]) -> None:
        """Built from (id, record) pairs; may run outside the store's lock on a copy of
        its items, then catch up with `update` under it."""
        self.sort_key = sort_key
        self._key = key
        self._entries: dict[str, Entry] = {task_id: (key(rec), rec.arrival, task_id) for task_id, rec in items}
        self._sorted = SortedList(self._entries.values())
        self._untracked = 0
        self._untrack()

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, tasks: Mapping[str, TaskRecord], changed: Iterable[str]) -> None:
        """Re-place the changed tasks (ids the store no longer holds are dropped)."""
        entries, ordered, key = self._entries, self._sorted, self._key
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
            entries[task_id] = untrack(new)  # a tracked value would make the dict tracked again
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
        """Task ids in order, lazily (the caller holds the store's lock while it reads)."""
        return map(_task_id, reversed(self._sorted) if reverse else iter(self._sorted))

    def stale(self, size: int) -> bool:
        """Holds many more ids than a store of `size` tasks: evicted tasks left behind."""
        return len(self._entries) > size + size // 4 + 100

    def prune(self, tasks: Mapping[str, TaskRecord]) -> None:
        """Drop the ids the store no longer holds (one pass, order kept)."""
        kept = [entry for entry in self._sorted if entry[2] in tasks]
        self._entries = {entry[2]: entry for entry in kept}
        self._sorted = SortedList()
        self._sorted.update(kept)
        self._untrack()
