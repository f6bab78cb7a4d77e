"""SearchTexts: the lowercased text free-text search looks in, per task, kept in arrival order.

Built at the first search (or when a search box opens), then updated with the ids of the tasks that
changed until searches stop for a while. `ids` tests every text in C and yields lazily, so a view
that wants the newest 500 matches stops after them. May still name evicted tasks: readers skip ids
the store no longer holds, and `prune` drops them in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import compress, repeat
from operator import contains

from .queries import search_text
from .records import TaskRecord


class SearchTexts:
    def __init__(self, items: Iterable[tuple[str, TaskRecord]]) -> None:
        """From (id, record) pairs in arrival order; may run outside the store's lock on a copy of its
        items, then catch up with `update` under it."""
        self._texts = {task_id: search_text(rec) for task_id, rec in items}

    def __len__(self) -> int:
        return len(self._texts)

    def update(self, tasks: Mapping[str, TaskRecord], changed: Iterable[str]) -> None:
        texts = self._texts
        for task_id in changed:
            rec = tasks.get(task_id)
            if rec is None:
                texts.pop(task_id, None)
            else:
                texts[task_id] = search_text(rec)

    def ids(self, needle: str, reverse: bool = True) -> Iterator[str]:
        """Ids whose text contains `needle` (lowercase), newest first unless not `reverse`, lazily."""
        texts = self._texts
        keys, values = (reversed(texts.keys()), reversed(texts.values())) if reverse else (texts.keys(), texts.values())
        return compress(keys, map(contains, values, repeat(needle)))

    def has(self, task_id: str, needle: str) -> bool:
        return needle in self._texts.get(task_id, "")

    def stale(self, size: int) -> bool:
        """Holds many more texts than a store of `size` tasks: evicted tasks left behind."""
        return len(self._texts) > size + size // 4 + 100

    def prune(self, tasks: Mapping[str, TaskRecord]) -> None:
        self._texts = {k: v for k, v in self._texts.items() if k in tasks}
