"""SearchTexts: the lowercased text free-text search looks in, per task, kept in arrival order.

Built at the first search (or when a search box opens), then updated with the ids of the tasks that
changed until searches stop for a while. `ids` tests every text in C and yields lazily, so a view
that wants the newest 500 matches stops after them. A scan that reached the end is remembered: a
needle that contains its needle (the next key typed, or the same search refreshed live) only tests
those matches and the texts that changed since, instead of the whole store (a rare needle: a 7 ms
scan of 100,000 texts that holds the GIL, four times a second while the view refreshes). May still
name evicted tasks: readers skip ids the store no longer holds, and `prune` drops them in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import compress, repeat, tee
from operator import contains

from stalk.embedded.events.paced import paced
from stalk.embedded.events.queries import search_text
from stalk.embedded.events.records import ARRIVAL, TaskRecord

SINCE_KEPT = 20_000  # changed texts tracked since the last complete scan, then the scan is forgotten


class SearchTexts:
    def __init__(self, records: Iterable[TaskRecord]) -> None:
        """From records in arrival order; may run outside the store's lock on a copy of its records,
        then catch up with `update` under it."""
        self._texts = {rec.task_id: search_text(rec) for rec in records}
        self._scan: tuple[str, list[str]] | None = None  # a needle and all its matches, oldest first
        self._since: set[str] = set()  # ids whose text changed or arrived since that scan

    def __len__(self) -> int:
        return len(self._texts)

    def update(self, tasks: Mapping[str, TaskRecord], changed: Iterable[str]) -> None:
        texts, since, new = self._texts, self._since, []
        for task_id in changed:
            rec = tasks.get(task_id)
            if rec is None:
                texts.pop(task_id, None)
                continue
            before = texts.get(task_id)
            if before is None:
                new.append(rec)
                continue
            text = search_text(rec)
            if before != text:
                texts[task_id] = text
                if self._scan is not None:
                    since.add(task_id)
        for rec in sorted(new, key=ARRIVAL):  # `changed` is a set: new texts go in in arrival order
            texts[rec.task_id] = search_text(rec)
            if self._scan is not None:
                since.add(rec.task_id)
        if len(since) > SINCE_KEPT:
            self._scan = None
            since.clear()

    def ids(self, needle: str, reverse: bool = True, tasks: Mapping[str, TaskRecord] | None = None) -> Iterator[str]:
        """Ids whose text contains `needle` (lowercase), newest first unless not `reverse`, lazily.
        With the store's `tasks`, a remembered scan may answer (in their arrival order)."""
        scan = self._scan
        if scan is not None and tasks is not None and scan[0] in needle:
            return self._rescan(needle, reverse, tasks)
        return self._scan_all(needle, reverse)

    def _scan_all(self, needle: str, reverse: bool) -> Iterator[str]:
        texts = self._texts
        keys, values = (reversed(texts.keys()), reversed(texts.values())) if reverse else (texts.keys(), texts.values())
        found: list[str] = []
        for task_id in compress(keys, map(contains, paced(values), repeat(needle))):
            found.append(task_id)
            yield task_id
        if reverse:
            found.reverse()
        self._scan, self._since = (needle, found), set()  # every text was tested: remembered

    def _rescan(self, needle: str, reverse: bool, tasks: Mapping[str, TaskRecord]) -> Iterator[str]:
        """The remembered matches that still match (tested in C: they are in arrival order already),
        and the texts new or changed since that match now, put in arrival order."""
        prior = self._scan[1]  # type: ignore[index]
        found = list(self.among(iter(prior), needle))
        fresh = self._since.difference(prior)
        if fresh:
            extra = sorted((tasks[i] for i in self.among(iter(fresh), needle) if i in tasks), key=ARRIVAL)
            last = tasks.get(found[-1]) if found else None
            if extra and (last is None or last.arrival > extra[0].arrival):  # not all newer: one order
                held = [tasks[i] for i in found if i in tasks]
                found = [rec.task_id for rec in sorted([*held, *extra], key=ARRIVAL)]
            else:  # the usual case: new tasks, newer than every match
                found.extend(rec.task_id for rec in extra)
        self._scan, self._since = (needle, found), set()
        return reversed(found) if reverse else iter(found)  # read in C, not resumed per id as a generator

    def among(self, ids: Iterator[str], needle: str) -> Iterator[str]:
        """The `ids` (in their order) whose text contains `needle`, tested in C, lazily (a lambda per
        id made a walk of a sort index 5x slower)."""
        keys, lookup = tee(ids)
        return compress(keys, map(contains, map(self._texts.get, lookup, repeat("")), repeat(needle)))

    def stale(self, size: int) -> bool:
        """Holds many more texts than a store of `size` tasks: evicted tasks left behind."""
        return len(self._texts) > size + size // 4 + 100

    def prune(self, tasks: Mapping[str, TaskRecord]) -> None:
        self._texts = {k: v for k, v in self._texts.items() if k in tasks}
        if self._scan is not None:
            self._scan = (self._scan[0], [k for k in self._scan[1] if k in tasks])
