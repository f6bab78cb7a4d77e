"""paced: the same items in the same order, drawn one slice at a time; a walk stops once unwanted."""

from __future__ import annotations

from itertools import count, islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalk.embedded.events import EventStore, Unwanted
from stalk.embedded.events.paced import SLICE, paced, wanted_while
from tests.test_events_search import sent


@given(st.lists(st.integers()), st.integers(1, 9))
def test_paced_yields_every_item_in_order(items, size):
    assert list(paced(items, size)) == items


def test_paced_reads_at_most_one_slice_ahead():
    source = count()
    taken = list(islice(paced(source, 100), 150))
    assert taken == list(range(150))
    assert next(source) == 200  # two slices drawn, nothing more: an endless walk stays lazy


def test_a_walk_nobody_wants_stops_between_slices_and_frees_the_store():
    store = EventStore()
    store.ingest_many([sent(f"t{i:05d}", float(i), name=f"demo.n{i % 3}") for i in range(3 * SLICE)])
    store._notify()
    store.prepare_sort("name")
    asked = []

    def wanted() -> bool:  # wanted for the first slice only: a key changed the filter meanwhile
        asked.append(1)
        return len(asked) < 2

    with pytest.raises(Unwanted):
        store.query(sort_key="name", name="demo.n", limit=None, wanted=wanted)  # a walk of every id
    assert len(asked) == 2
    assert len(store.query(sort_key="name", limit=10, wait=0.01)) == 10  # the lock was given back
    assert len(store.query(sort_key="name", limit=None, wanted=lambda: True)) == 3 * SLICE
    # the UI thread's quick query walks in one go: it neither hands the GIL over between slices nor asks
    assert len(store.query(sort_key="name", state="PENDING", limit=None, wait=0.01, wanted=wanted)) == 3 * SLICE
    assert len(asked) == 2
    with wanted_while(None, pace=False):
        assert isinstance(paced([1, 2]), type(iter([])))
    with wanted_while(lambda: False):
        pass
    assert list(paced(range(5))) == list(range(5))  # outside a query nobody asks
