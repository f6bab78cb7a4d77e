"""A state filter over a sort index (embedded/events/filters.py): the states' own tasks sorted by their
entries, or the index walked with a budget and then those sorted, give the same rows as the walk of the
whole index that came before (every record tested with `matches`) and as a plain sort, for any store,
filter, order and limit; the filters' test in C agrees with `matches`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stalk.embedded.events.store as store_module
from stalk.embedded.events import EventStore
from stalk.embedded.events.filters import Filter, walk_budget
from stalk.embedded.events.queries import SORT_KEYS, matches, sort_records
from stalk.embedded.events.records import TaskRecord

KEYS = [k for k in SORT_KEYS if k != "received"]
STATES = [*["SUCCESS", "FAILURE", "success,failure", "revoked,success"] * 3, "STARTED", "RETRY", "PENDING",
          "RECEIVED", "REVOKED", "failure, retry", "started,pending,received", "NOSUCH"]  # the states tasks end in most
#: How `_in_states` chooses: as shipped; always the states' tasks sorted; a walk cut short at once, or
#: after a few ids (then those sorted after all); a walk that is never cut short.
BUDGETS = {
    "shipped": walk_budget,
    "sort": lambda count, size, limit: None,
    "cut at once": lambda count, size, limit: None if limit is None else 0,
    "cut after 3": lambda count, size, limit: None if limit is None else 3,
    "whole walk": lambda count, size, limit: None if limit is None else 10 ** 9,
}


def event(kind: str, uuid: str, ts: float, variant: int) -> dict:
    base = {"uuid": uuid, "hostname": f"w{variant % 3}@host", "timestamp": ts}
    if kind == "sent":
        return {**base, "type": "task-sent", "name": f"demo.n{variant}", "args": "()", "kwargs": "{}",
                "queue": f"q{variant % 2}", "routing_key": f"rk{variant % 3}", "retries": 0}
    if kind == "received":
        return {**base, "type": "task-received", "name": f"demo.n{variant}"}
    if kind == "started":
        return {**base, "type": "task-started"}
    if kind == "retried":
        return {**base, "type": "task-retried", "exception": "again"}
    if kind == "done":
        return {**base, "type": "task-succeeded", "result": "1", "runtime": variant / 10}
    if kind == "revoked":
        return {**base, "type": "task-revoked"}
    return {**base, "type": "task-failed", "exception": "boom"}


steps = st.lists(st.tuples(st.integers(0, 50), st.sampled_from(
    ["sent", "received", "started", "retried", "done", "failed", "revoked"]), st.integers(0, 5)),
    min_size=1, max_size=250)
filters = st.fixed_dictionaries({  # mostly a state alone: with more filters most pages are empty
    "state": st.sampled_from(STATES),
    "name": st.sampled_from([*[None] * 15, "n1", "demo.n", "n4", "zz"]),
    "queue": st.sampled_from([*[None] * 15, "q0", "rk2", "zz"]),
    "worker": st.sampled_from([*[None] * 15, "w1", "@host", "w2@host"]),
})
views = st.lists(st.tuples(filters, st.sampled_from(KEYS), st.booleans(), st.sampled_from([None, 1, 3, 7, 40])),
                 min_size=1, max_size=12)


def old_walk(store: EventStore, sort_key: str, reverse: bool, limit: int | None, **flt: str | None) -> list[str]:
    """The walk every sorted, state-filtered query made before: the whole index in order, each record
    tested, up to `limit`."""
    tasks, test = store._fold.tasks, matches(search=None, **flt)
    out: list[str] = []
    for task_id in store._indexes[sort_key].ids(reverse):
        rec = tasks.get(task_id)
        if rec is not None and (test is None or test(rec)):
            out.append(task_id)
            if limit is not None and len(out) == limit:
                break
    return out


def plain(store: EventStore, sort_key: str, reverse: bool, limit: int | None, **flt: str | None) -> list[str]:
    test = matches(search=None, **flt)
    chosen = [r for r in store._fold.tasks.values() if test is None or test(r)]
    return [r.task_id for r in sort_records(chosen, sort_key, reverse)[:limit]]


def filled(history: list[tuple[int, str, int]]) -> EventStore:
    store = EventStore(max_tasks=35)  # evictions too: the indexes then name tasks the store no longer holds
    for sort_key in KEYS:
        store.prepare_sort(sort_key, keep=True)
    for n, (task, kind, variant) in enumerate(history):
        store.ingest(event(kind, f"t{task:02d}", float(n % 40), variant))  # ties of time and runtime
        if n % 23 == 0:
            store._notify()  # some changes notified, the rest read by the query itself
    return store


@pytest.mark.parametrize("budget", list(BUDGETS))
@settings(max_examples=80, deadline=None)
@given(history=steps, asked=views)
def test_state_filters_give_the_rows_of_the_old_walk_and_of_a_plain_sort(budget, history, asked):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "walk_budget", BUDGETS[budget])
        check_views(filled(history), asked)


def check_views(store: EventStore, asked: list) -> None:
    for flt, sort_key, reverse, limit in asked:
        got = [r.task_id for r in store.query(sort_key=sort_key, reverse=reverse, limit=limit, **flt)]
        assert got == old_walk(store, sort_key, reverse, limit, **flt), (flt, sort_key, reverse, limit)
        assert got == plain(store, sort_key, reverse, limit, **flt), (flt, sort_key, reverse, limit)
        quick = [r.task_id for r in store.query(sort_key=sort_key, reverse=reverse, limit=limit, wait=1.0, **flt)]
        assert quick == got


@settings(max_examples=100, deadline=None)
@given(history=steps, flt=filters, sort_key=st.sampled_from(["received", *KEYS]), reverse=st.booleans(),
       limit=st.sampled_from([None, 1, 5, 40]), search=st.sampled_from([None, "n1", "t0"]))
def test_every_path_filters_as_matches_does(history, flt, sort_key, reverse, limit, search):
    """Received order, searches and unfiltered states too: the filter in C passes what `matches` does."""
    store = filled(history)
    got = store.query(sort_key=sort_key, reverse=reverse, limit=limit, search=search, **flt)
    test = matches(search=search, **flt)
    assert all(test is None or test(r) for r in got)
    if sort_key != "received":  # received order: the newest to arrive, then sorted (see _select)
        chosen = [r for r in store._fold.tasks.values() if test is None or test(r)]
        assert [r.task_id for r in got] == [r.task_id for r in sort_records(chosen, sort_key, reverse)[:limit]]


def test_the_filter_in_c_agrees_with_matches_on_missing_fields_and_routing_keys():
    records = [TaskRecord("a", name=None, queue=None, routing_key="rk", worker=None, state="SUCCESS"),
               TaskRecord("b", name="demo.add", queue="q", routing_key=None, worker="w1@h", state="FAILURE"),
               TaskRecord("c", name="x.add.y", queue="other", routing_key="q", worker="w2@h", state="RETRY")]
    cases = [dict(state=None, name=None, queue=None, worker=None),
             dict(state="success, failure", name=None, queue=None, worker=None),
             dict(state=None, name="add", queue=None, worker=None),
             dict(state=None, name=None, queue="q", worker=None),
             dict(state=None, name=None, queue="rk", worker="w"),
             dict(state="retry", name="add", queue="q", worker="w2")]
    for case in cases:
        test = matches(search=None, **case)
        expected = [r.task_id for r in records if test is None or test(r)]
        assert [r.task_id for r in Filter(**case).passing(records)] == expected, case


def test_a_rare_state_is_sorted_and_a_common_one_walked():
    """The choice itself: failures among many successes, sorted by runtime (every failure has none, so
    a descending walk would pass every success first)."""
    assert walk_budget(4_000, 100_000, 500) is None  # 4,000 entries sorted rather than ~12,500 ids walked
    assert walk_budget(96_000, 100_000, 500) == 96_500
    assert walk_budget(96_000, 100_000, None) is None  # everything: sorted
    store = EventStore()
    for sort_key in KEYS:
        store.prepare_sort(sort_key, keep=True)
    for i in range(300):
        uid = f"t{i:03d}"
        store.ingest(event("sent", uid, float(i), i % 5))
        store.ingest(event("failed" if i % 30 == 0 else "done", uid, float(i) + 0.5, i % 5))
    store._notify()
    failed = store.query(state="FAILURE", sort_key="runtime", reverse=True, limit=4)
    assert [r.task_id for r in failed] == ["t270", "t240", "t210", "t180"]  # no runtime: ties, newest first
    assert all(r.state == "FAILURE" for r in failed)
    succeeded = store.query(state="success", sort_key="runtime", reverse=True, limit=3)
    assert [(r.task_id, r.runtime) for r in succeeded] == [("t299", 0.4), ("t294", 0.4), ("t289", 0.4)]
