"""Filter: a query's filters applied in C over a walk, and how a state filter reads a sort index.

A sorted view filtered on a state walks a sort index until it has its rows; a state few tasks are in
may lie far down the walk (failures sorted by runtime have none: a descending walk passes every other
task first), 100,000 ids read at ~0.5-1 us each (their entries and records, all over memory). Sorting
the state's own tasks instead costs ~0.25 us per task (entries compared in C), so a rare state's
tasks are put in the index's order straight away, and a common state's walk stops once it has read
as many ids as that would have sorted (then they are sorted after all: at worst twice the sort).
Sorted by state, the states' runs of the index are found by bisection and nothing else is read.

The walk's test is the same predicate `matches` makes, asked once per distinct combination of the
fields it reads (a few states, names, workers and queues among 100,000 tasks) and looked up in C.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress, filterfalse, islice, tee
from operator import attrgetter
from types import SimpleNamespace
from typing import Any

from stalk.embedded.events.queries import matches, wanted_states
from stalk.embedded.events.records import TaskRecord

PACED_FROM = 8_192  # a state's tasks sorted without handing the GIL over up to this many (~2-4 ms; the sort
# itself, in C, holds it anyway): in the stack's process each hand-over may go to the history writer for
# up to the switch interval (5 ms), and a page of 4,000 failures cost 2-3 ms more at the median
_FIELDS = {"state": ("state",), "name": ("name",), "queue": ("queue", "routing_key"), "worker": ("worker",)}


class Verdicts(dict):
    """Field values -> whether a task with them passes `test`, each combination tested once."""

    def __init__(self, test: Callable[[Any], bool], fields: tuple[str, ...]) -> None:
        super().__init__()
        self._test, self._fields = test, fields

    def __missing__(self, key: Any) -> bool:
        values = key if len(self._fields) > 1 else (key,)  # attrgetter of one field: its value alone
        verdict = self[key] = bool(self._test(SimpleNamespace(**dict(zip(self._fields, values, strict=True)))))
        return verdict


class Filter:
    """A query's filters on state, name, queue, worker (`matches`' test, also over walks in C)."""

    def __init__(self, state: str | None, name: str | None, queue: str | None, worker: str | None) -> None:
        self.test = matches(state, name, queue, worker, None)
        self.states = wanted_states(state) if state else None
        self.only_state = not (name or queue or worker)  # no test but the state's
        given = {"state": state, "name": name, "queue": queue, "worker": worker}
        self._fields = tuple(f for key, value in given.items() if value for f in _FIELDS[key])
        self._read = attrgetter(*self._fields) if self._fields else None

    def passing(self, records: Iterable[TaskRecord]) -> Iterator[TaskRecord]:
        """The `records` that pass, lazily, in their order."""
        if self.test is None or self._read is None:
            return iter(records)
        verdicts = Verdicts(self.test, self._fields)
        kept, read = tee(records)
        return compress(kept, map(verdicts.__getitem__, map(self._read, read)))

    def first(self, records: Iterable[TaskRecord], limit: int | None) -> list[TaskRecord]:
        """The first `limit` records that pass."""
        return list(islice(self.passing(records), limit))


def walk_budget(count: int, size: int, limit: int | None) -> int | None:
    """How many ids of a sort index a state filter walks before it sorts the state's `count` tasks
    instead (None: sort them now). A walk meets the state's tasks every size/count ids if they are
    spread evenly: limit*size/count ids for `limit` rows; past `count` ids sorting them is cheaper.
    Count plus limit ids always finish a walk for a state most tasks are in. Without a limit a walk
    reads the whole index: sorting at most as many is never much slower."""
    if limit is None:
        return None
    return count + limit if count * count > limit * size else None


def in_states(by_state: Mapping[str, Mapping[str, None]], states: set[str],
              ids: Iterator[str]) -> Iterator[str]:
    """The `ids` of tasks in `states`, by the fold's per-state ids (a dict lookup in C, no record read);
    the ids of evicted tasks may pass (the records decide). Several states: a set of theirs, or of the
    other states' when those hold fewer."""
    if len(states) == 1:
        (state,) = states
        return filter(by_state.get(state, {}).__contains__, ids)
    wanted = [by_state.get(state, {}) for state in states]
    others = [ids_of for state, ids_of in by_state.items() if state not in states]
    if sum(map(len, wanted)) <= sum(map(len, others)):
        return filter(set().union(*wanted).__contains__, ids)
    return filterfalse(set().union(*others).__contains__, ids)
