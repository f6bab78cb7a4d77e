"""Sorted queries read a kept sort index: the same rows as sorting every record, while tasks change
state, get their runtime, get evicted and arrive; built outside the lock; freed when unread."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedList

import stalk.embedded.events.store as store_module
from stalk.embedded.events import EventStore, StoreBusy
from stalk.embedded.events.queries import SORT_KEYS, search_text, sort_records
from tests.test_events_search import HOST, done, sent

KEYS = [k for k in SORT_KEYS if k != "received"]


def plain(store: EventStore, sort_key: str, reverse: bool, limit: int | None, state: str | None = None,
          needle: str | None = None) -> list[str]:
    """Every record, filtered and sorted the slow way."""
    everything = list(store._fold.tasks.values())  # arrival order
    chosen = [r for r in everything if (state is None or r.state == state)
              and (needle is None or needle in search_text(r))]
    return [r.task_id for r in sort_records(chosen, sort_key, reverse)[:limit]]


def started(uuid: str, ts: float, worker: str) -> dict:
    return {"type": "task-started", "uuid": uuid, "hostname": worker, "timestamp": ts}


def failed(uuid: str, ts: float) -> dict:
    return {"type": "task-failed", "uuid": uuid, "hostname": HOST, "timestamp": ts, "exception": "boom"}


def check_all(store: EventStore) -> None:
    for sort_key in KEYS:
        store.prepare_sort(sort_key)
        assert sort_key in store._indexes
        for reverse in (True, False):
            for limit in (None, 7):
                for state, needle in ((None, None), ("SUCCESS", None), ("FAILURE", None), (None, "(3"),
                                      (None, "name1"), (None, "zzz")):
                    got = [r.task_id for r in store.query(sort_key=sort_key, reverse=reverse, limit=limit,
                                                          state=state, search=needle)]
                    assert got == plain(store, sort_key, reverse, limit, state, needle), (
                        sort_key, reverse, limit, state, needle)


def make_event(kind: str, uuid: str, ts: float, variant: int) -> dict:
    if kind == "sent":
        return sent(uuid, ts, name=f"demo.name{variant}", args=f"({variant * 3},)")
    if kind == "started":
        return started(uuid, ts, f"w{variant}@host")
    if kind == "done":
        return {**done(uuid, ts), "runtime": variant / 10}
    return failed(uuid, ts)


events = st.lists(st.tuples(st.integers(0, 60), st.sampled_from(["sent", "started", "done", "failed"]),
                            st.integers(0, 4)), min_size=1, max_size=300)


@settings(max_examples=40, deadline=None)
@given(events)
def test_sorted_queries_match_a_plain_sort_while_tasks_change(steps):
    store = EventStore(max_tasks=40)  # evictions too
    for sort_key in KEYS:
        store.prepare_sort(sort_key)  # the last one is kept, and follows every change below
    for n, (task, kind, variant) in enumerate(steps):
        event = make_event(kind, f"t{task:02d}", float(n), variant)
        store.ingest(event)
        if n % 17 == 0:
            store._notify()
    check_all(store)


def test_a_sort_index_built_outside_the_lock_sees_changes_made_meanwhile(monkeypatch):
    store = EventStore()
    store.ingest_many([sent("a", 1.0, name="demo.b"), done("a", 1.5)])
    store._notify()
    build = store_module.SortIndex

    def slow_build(sort_key, key, items):  # while the index is built, tasks arrive and change
        store.ingest_many([sent("b", 2.0, name="demo.a"), sent("c", 3.0, name="demo.c")])
        store._notify()
        store.ingest(sent("a", 2.5, name="demo.z"))  # not notified yet (newer: a replacement)
        return build(sort_key, key, items)

    monkeypatch.setattr(store_module, "SortIndex", slow_build)
    store.prepare_sort("name")
    monkeypatch.undo()
    got = [r.task_id for r in store.query(sort_key="name", reverse=False, wait=0.01)]
    assert got == ["b", "c", "a"]


def test_a_quick_query_never_sorts_the_whole_store_and_the_notifier_builds_the_index():
    store = EventStore()
    store.ingest_many([sent(f"t{i}", float(i), name=f"demo.n{i % 3}") for i in range(30)])
    with pytest.raises(StoreBusy):
        store.query(sort_key="runtime", wait=0.01)
    assert len(store.query(sort_key="runtime")) == 30  # a thread's query sorts meanwhile
    store.start()
    try:
        for _ in range(100):
            if "runtime" in store._indexes:
                break
            store._stop.wait(0.02)
        assert [r.task_id for r in store.query(sort_key="runtime", wait=0.01)] == plain(store, "runtime", True, 500)
    finally:
        store.stop()


def test_indexes_no_query_read_for_a_while_are_freed(monkeypatch):
    store = EventStore()
    store.ingest_many([sent("a", 1.0), done("a", 1.5)])
    store.prepare_sort("name")
    store.prepare_search()
    clock = store_module.time.monotonic() + store_module.INDEX_KEPT / 2
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock)
    store.prepare_sort("queue")
    store.query(sort_key="name")
    assert set(store._indexes) == {"name", "queue", "search"}
    clock += store_module.INDEX_KEPT * 0.75
    store.ingest(sent("b", 2.0))
    store._notify()
    store._drop_unread()
    assert set(store._indexes) == {"name", "queue"}
    clock += store_module.INDEX_KEPT
    store._drop_unread()
    assert store._indexes == {}
    store.ingest(sent("c", 3.0))
    assert [r.task_id for r in store.query(sort_key="queue", search="add")] == ["c", "b", "a"]


def test_the_collector_does_not_walk_the_big_containers():
    """A full collection would otherwise walk every record and index entry (bench/panel_load.py)."""
    store = EventStore(max_tasks=3000)
    store.ingest_many([sent(f"t{i:04d}", float(i), name=f"demo.n{i % 7}") for i in range(2000)])
    store.prepare_sort("name")
    store.ingest_many([sent(f"u{i:04d}", 3000.0 + i, name=f"demo.m{i % 5}") for i in range(2000)])  # splits, evictions
    store._notify()
    index = store._indexes["name"]
    containers = [store._fold.tasks, store._fold.finished_order, index._entries, index._sorted._lists,
                  *index._sorted._lists]
    assert not any(gc.is_tracked(c) for c in containers)
    assert [r.task_id for r in store.query(sort_key="name", limit=None)] == plain(store, "name", True, None)


def test_an_index_is_cut_as_sortedcontainers_cuts_it_and_stays_in_order_through_prune_and_changes():
    """The index builds its SortedList from entries it sorted itself (a second sort would hold the GIL
    12-20 ms for 100,000): the same sublists as SortedList's own, given records in any order."""
    store = EventStore(max_tasks=5000)
    store.ingest_many([sent(f"t{i:04d}", float(i), name=f"demo.n{i % 7}") for i in range(4000)])
    store._notify()
    records = list(store._fold.tasks.values())
    records.reverse()  # not in arrival order: the index puts them back for the ties
    index = store_module.SortIndex("name", SORT_KEYS["name"], records)
    reference = SortedList((SORT_KEYS["name"](r), r.arrival, r.task_id) for r in records)
    assert index._sorted._lists == reference._lists and index._sorted._maxes == reference._maxes
    assert len(index._sorted) == len(reference) == 4000
    index._sorted._check()  # sortedcontainers' own invariants
    evicted = {r.task_id for r in records[:1500]}
    tasks = {r.task_id: r for r in records if r.task_id not in evicted}
    index.prune(tasks)
    index._sorted._check()
    index.update(tasks, [f"t{i:04d}" for i in range(2000, 2100)])  # unchanged: nothing moves
    store.ingest_many([sent(f"t{i:04d}", float(i), name="demo.a") for i in range(100, 150)])  # renamed
    tasks.update((f"t{i:04d}", store._fold.tasks[f"t{i:04d}"]) for i in range(100, 150))
    index.update(tasks, [f"t{i:04d}" for i in range(100, 150)])
    index._sorted._check()
    expected = sorted((SORT_KEYS["name"](rec), rec.arrival, t) for t, rec in tasks.items())
    assert list(index._sorted) == expected


@settings(max_examples=30, deadline=None)
@given(events)
def test_without_an_index_a_query_takes_its_first_rows_from_a_heap_with_the_same_ties(steps):
    """Before a sort key has its index a thread's query reads every record; its first rows come from a
    heap (no 10-20 ms sort holding the GIL), in exactly a full sort's order, ties included."""
    store = EventStore(max_tasks=40)
    for n, (task, kind, variant) in enumerate(steps):
        store.ingest(make_event(kind, f"t{task:02d}", float(n), variant))
    store._notify()
    for sort_key in KEYS:
        for reverse in (True, False):
            for limit in (1, 3, None):
                got = [r.task_id for r in store.query(sort_key=sort_key, reverse=reverse, limit=limit)]
                assert got == plain(store, sort_key, reverse, limit), (sort_key, reverse, limit)
                assert sort_key not in store._indexes  # the heap's answer, not an index's


def test_a_search_whose_matches_lie_deep_in_the_sort_order_reads_them_in_the_indexs_order():
    """Many matches, none at the index's head: the walk gives up after WALK_PER_ROW entries per row
    and orders the matches by their index entries instead: the same rows as a full sort."""
    store = EventStore(max_tasks=5000)
    store.ingest_many([sent(f"t{i:04d}", float(i), name="demo.z" if i % 6 == 0 else "demo.a") for i in range(3000)])
    store.ingest_many([done(f"t{i:04d}", 3000.0 + i) for i in range(0, 3000, 4)])  # two states among them
    store._notify()
    store.prepare_search()
    store.prepare_sort("name")
    for reverse in (False, True):
        for state in (None, "SUCCESS"):
            for wait in (None, 0.5):
                got = [r.task_id for r in store.query(search="o.z", sort_key="name", reverse=reverse, limit=20,
                                                      state=state, wait=wait)]
                assert got == plain(store, "name", reverse, 20, state, "o.z"), (reverse, state, wait)
                assert len(got) == 20


def test_an_index_prepared_to_keep_is_never_freed(monkeypatch):
    store = EventStore()
    store.ingest_many([sent("a", 1.0, name="demo.b"), sent("b", 2.0, name="demo.a")])
    store.prepare_sort("name", keep=True)
    store.prepare_search(keep=True)
    store.prepare_sort("queue")
    clock = store_module.time.monotonic() + store_module.INDEX_KEPT * 3
    monkeypatch.setattr(store_module.time, "monotonic", lambda: clock)
    store._drop_unread()
    assert set(store._indexes) == {"name", "search"}
    store.ingest(sent("c", 3.0, name="demo.0"))  # and it still follows every change
    store._notify()
    assert [r.task_id for r in store.query(sort_key="name", reverse=False, wait=0.01)] == ["c", "b", "a"]


changes = st.lists(st.one_of(
    st.tuples(st.just("rename"), st.integers(0, 1199), st.sampled_from(["demo.a", "demo.zb", "demo.zbx", "x.zb"])),
    st.tuples(st.just("new"), st.integers(1200, 1300), st.sampled_from(["demo.a", "demo.zbx", "x.zb"])),
    st.tuples(st.just("done"), st.integers(0, 1300), st.none()),
), max_size=8)


@settings(max_examples=40, deadline=None)
@given(st.lists(changes, min_size=4, max_size=4), st.sampled_from(["name", "state", "runtime"]), st.booleans(),
       st.booleans(), st.sampled_from([None, "SUCCESS"]))
def test_a_refined_search_from_remembered_matches_answers_as_a_full_sort(steps, sort_key, reverse, notify, state):
    """Matches deep in the sort order are put in order once and remembered; the next needles typed
    (each contains the last) and live refreshes re-test them in order, and place the tasks that
    changed, arrived or were evicted since: always a full sort's answer."""
    store = EventStore(max_tasks=1250)  # the new tasks evict the oldest
    store.ingest_many([sent(f"t{i:04d}", float(i), name="demo.zb" if i % 5 == 0 else "demo.a") for i in range(1200)])
    store.ingest_many([done(f"t{i:04d}", 2000.0 + i) for i in range(0, 1200, 3)])
    store._notify()
    store.prepare_search()
    store.prepare_sort(sort_key)
    clock = 5000.0
    for needle, step in zip(("zb", "zb", "o.zb", "o.zbx"), steps, strict=True):
        got = [r.task_id for r in store.query(search=needle, sort_key=sort_key, reverse=reverse, limit=15,
                                              state=state, wait=0.5)]
        assert got == plain(store, sort_key, reverse, 15, state, needle), (needle, step)
        for _kind, n, name in step:
            clock += 1.0
            store.ingest(sent(f"t{n:04d}", clock, name=name) if name else done(f"t{n:04d}", clock))
        if notify:
            store._notify()


def test_the_next_key_typed_reads_the_remembered_matches_not_the_store(monkeypatch):
    store = EventStore(max_tasks=5000)
    store.ingest_many([sent(f"t{i:04d}", float(i), name="demo.zb" if i % 6 == 0 else "demo.a") for i in range(3000)])
    store._notify()
    store.prepare_search()
    store.prepare_sort("name")
    first = store.query(search="zb", sort_key="name", reverse=False, limit=20)
    index = store._indexes["name"]
    assert index.remembered is not None and index.remembered.needle == "zb" and len(index.remembered.ids) == 500
    monkeypatch.setattr(index, "in_order", None)  # no sort of all the matches again
    assert store.query(search="o.zb", sort_key="name", reverse=False, limit=20, wait=0.5) == first
    assert store.query(search="a", sort_key="name", reverse=False, limit=20, wait=0.5)  # "zb" not in "a": the index
