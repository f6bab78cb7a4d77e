"""Free-text search over a large store: kept texts follow new args, evictions and case, and the fast
paths (newest first up to a limit, oldest-first) give the same rows as a plain filter-then-sort would."""

from __future__ import annotations

import gc
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stalk.embedded.events.search_texts as texts_module
from stalk.embedded.events import EventStore, StoreBusy
from stalk.embedded.events.queries import search_text, sort_records

HOST = "w1@host"


def sent(uuid: str, ts: float, name: str = "demo.add", args: str = "(1, 2)", kwargs: str = "{}") -> dict:
    return {"type": "task-sent", "uuid": uuid, "hostname": HOST, "timestamp": ts, "name": name, "args": args,
            "kwargs": kwargs, "queue": "default", "retries": 0}


def done(uuid: str, ts: float) -> dict:
    return {"type": "task-succeeded", "uuid": uuid, "hostname": HOST, "timestamp": ts, "result": "3",
            "runtime": 0.1}


def plain(store: EventStore, needle: str, reverse: bool = True) -> list[str]:
    """What a search must return: every record tested, sorted by arrival."""
    records = store.query(limit=None, reverse=reverse)
    return [r.task_id for r in records if needle.lower() in search_text(r)]


def test_search_is_case_insensitive_and_never_spans_fields():
    store = EventStore()
    store.ingest_many([sent("a1", 1.0, name="Shop.Charge", args="('EUR',)"), done("a1", 2.0),
                       sent("b2", 3.0, name="demo.add", args="(1, 2)")])
    store._notify()
    assert [r.task_id for r in store.query(search="charge")] == ["a1"]
    assert [r.task_id for r in store.query(search="eur")] == ["a1"]
    assert store.query(search="add(1") == []  # name and args are apart
    assert [r.task_id for r in store.query(search="B2")] == ["b2"]


def test_search_sees_args_that_arrive_after_a_search():
    store = EventStore()
    store.ingest({"type": "task-started", "uuid": "late", "hostname": HOST, "timestamp": 5.0})
    store._notify()
    assert store.query(search="needle") == []
    store.ingest(sent("late", 4.0, args="('needle',)"))  # not notified yet
    assert [r.task_id for r in store.query(search="needle")] == ["late"]
    store._notify()
    assert [r.task_id for r in store.query(search="needle")] == ["late"]


def test_search_forgets_evicted_tasks():
    store = EventStore(max_tasks=50)
    for i in range(50):
        store.ingest_many([sent(f"old{i}", i, args="('gone',)"), done(f"old{i}", i + 0.5)])
    store._notify()
    assert len(store.query(search="gone", limit=None)) == 50
    for i in range(500):
        store.ingest_many([sent(f"new{i}", 100 + i, args="('kept',)"), done(f"new{i}", 100.5 + i)])
        if i % 20 == 0:
            store._notify()
    store._notify()
    assert store.query(search="gone") == []
    assert len(store.query(search="kept", limit=None)) == 50
    assert len(store._indexes["search"]) <= 50 + 50 // 4 + 100  # evicted ones pruned in bulk


def test_fast_paths_match_a_plain_scan():
    store = EventStore()
    for i in range(400):
        store.ingest_many([sent(f"t{i:03d}", float(i), args=f"({i % 37},)"), done(f"t{i:03d}", i + 0.5)])
    store._notify()
    for needle in ("(5,)", "t1", "(36", "zzz"):
        for reverse in (True, False):
            for limit in (None, 5):
                got = [r.task_id for r in store.query(search=needle, reverse=reverse, limit=limit)]
                assert got == plain(store, needle, reverse)[:limit], (needle, reverse, limit)
    by_name = store.query(search="(5,)", sort_key="name", limit=None)
    assert sorted(r.task_id for r in by_name) == sorted(plain(store, "(5,)"))
    oldest = [r.task_id for r in store.query(reverse=False, limit=3)]
    assert oldest == ["t000", "t001", "t002"]


def test_records_are_not_walked_by_the_collector_and_are_freed_when_evicted():
    store = EventStore(max_tasks=10)
    store.ingest_many([sent("first", 0.0), done("first", 0.5)])
    first = store.get("first")
    assert first is not None and not gc.is_tracked(first)
    before = sys.getrefcount(first)
    for i in range(30):
        store.ingest_many([sent(f"n{i}", 1.0 + i), done(f"n{i}", 1.5 + i)])
    assert store.get("first") is None
    assert sys.getrefcount(first) < before  # the store let go: only this test holds it now


def test_search_texts_built_outside_the_lock_see_changes_made_meanwhile(monkeypatch):
    store = EventStore()
    store.ingest_many([sent("a", 1.0, args="('old',)"), done("a", 1.5)])
    store._notify()
    build = search_text

    def slow_build(rec):  # while the texts are built, a new task arrives and is notified
        if rec.task_id == "a" and store.get("b") is None:
            store.ingest(sent("b", 2.0, args="('fresh',)"))
            store._notify()
        return build(rec)

    monkeypatch.setattr(texts_module, "search_text", slow_build)
    store.prepare_search()
    monkeypatch.undo()
    assert [r.task_id for r in store.query(search="fresh", wait=0.01)] == ["b"]
    assert [r.task_id for r in store.query(search="old", wait=0.01)] == ["a"]


def test_a_quick_query_does_not_build_search_texts():
    store = EventStore()
    store.ingest(sent("a", 1.0))
    with pytest.raises(StoreBusy):
        store.query(search="add", wait=0.01)
    store.prepare_search()
    assert [r.task_id for r in store.query(search="add", wait=0.01)] == ["a"]


def test_state_filters_read_the_state_index_and_match_a_plain_scan():
    store = EventStore(max_tasks=3000)
    for i in range(4000):  # evictions too
        uuid = f"s{i:04d}"
        end = ({"type": "task-failed", "uuid": uuid, "hostname": HOST, "timestamp": i + 0.5, "exception": "x"}
               if i % 50 == 0 else done(uuid, i + 0.5))
        store.ingest_many([sent(uuid, float(i), name=f"demo.t{i % 7}"), end])
        if i % 97 == 0:
            store.ingest({"type": "task-revoked", "uuid": uuid, "hostname": HOST, "timestamp": i + 0.9})
    everything = store.query(limit=None, reverse=False)
    for state in ("FAILURE", "SUCCESS", "REVOKED", "failure,revoked", "PENDING"):
        wanted = {s.strip().upper() for s in state.split(",")}
        for sort_key, reverse, limit in (("received", True, 20), ("received", False, None), ("name", True, 5)):
            got = [r.task_id for r in store.query(state=state, sort_key=sort_key, reverse=reverse, limit=limit)]
            plain = sort_records([r for r in everything if r.state in wanted], sort_key, reverse)[:limit]
            assert got == [r.task_id for r in plain], (state, sort_key, reverse, limit)


ops = st.lists(st.one_of(
    st.tuples(st.just("task"), st.integers(0, 40), st.sampled_from(["('abc',)", "('ab',)", "('b',)", "('xbc',)"])),
    st.tuples(st.just("search"), st.sampled_from(["a", "ab", "abc", "b", "bc", "xbc", "zz"]), st.sampled_from([None, 3])),
    st.tuples(st.just("notify"), st.just(0), st.just(0))), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_a_remembered_scan_answers_like_a_full_one_while_texts_change(steps):
    """Typing on (a needle that contains the last one) re-tests the last complete scan's matches and
    the texts that changed since: the same rows as testing every text."""
    store = EventStore(max_tasks=30)  # evictions too
    for n, (kind, a, b) in enumerate(steps):
        if kind == "task":
            store.ingest(sent(f"t{a:02d}", float(n), args=b))
        elif kind == "notify":
            store._notify()
        else:
            for reverse in (True, False):
                got = [r.task_id for r in store.query(search=a, limit=b, reverse=reverse)]
                assert got == walked(store, a, reverse, b), (a, b, reverse)


def walked(store: EventStore, needle: str, reverse: bool, limit: int | None) -> list[str]:
    """The live view's rule, testing every text: the newest (or oldest) `limit` matches by arrival,
    sorted by received time."""
    matches = [r for r in store._fold.tasks.values() if needle in search_text(r)]
    chosen = (matches[::-1] if reverse else matches)[:limit]
    return [r.task_id for r in sort_records(sorted(chosen, key=lambda r: r.arrival), "received", reverse)]
