"""paced: the same items in the same order, drawn one slice at a time."""

from __future__ import annotations

from itertools import count, islice

from hypothesis import given
from hypothesis import strategies as st

from embedded.events.paced import paced


@given(st.lists(st.integers()), st.integers(1, 9))
def test_paced_yields_every_item_in_order(items, size):
    assert list(paced(items, size)) == items


def test_paced_reads_at_most_one_slice_ahead():
    source = count()
    taken = list(islice(paced(source, 100), 150))
    assert taken == list(range(150))
    assert next(source) == 200  # two slices drawn, nothing more: an endless walk stays lazy
