"""The event store without processes: folding, precedence, eviction, batching, history, queries."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalk.embedded.events import Changes, EventStore
from stalk.embedded.events.fold import Fold
from stalk.embedded.events.history import HistoryError, read_tasks
from stalk.embedded.events.states import FINISHED, REQUEUED_EVENT, RETRY, precedence

from .conftest import wait_until

HOST = "w1@host"


def ev(type_: str, uuid: str = "t1", ts: float = 100.0, **fields) -> dict:
    return {"type": type_, "uuid": uuid, "hostname": HOST, "timestamp": ts, "local_received": ts, **fields}


def life(uuid: str = "t1", start: float = 100.0, end: str = "task-succeeded", **end_fields) -> list[dict]:
    return [
        ev("task-sent", uuid, start, name="demo.add", args="(1, 2)", kwargs="{}", queue="default",
           routing_key="default", retries=0),
        ev("task-received", uuid, start + 1, name="demo.add", args="(1, 2)", kwargs="{}", retries=0),
        ev("task-started", uuid, start + 2),
        ev(end, uuid, start + 3, **end_fields),
    ]


def test_lose_unfinished_leaves_done_tasks_and_a_late_finish_still_wins():
    fold = Fold(track_dirty=True)
    fold.apply_many(life("ok", result="3"))
    fold.apply_many(life("rejected")[:1] + [ev("task-rejected", "rejected", 103.0)])
    fold.apply_many(life("queued")[:1] + life("held")[:2] + life("retrying")[:3])
    fold.apply(ev("task-retried", "retrying", 104.0, exception="E()"))
    lost = fold.lose_unfinished("dropped", 200.0)
    assert sorted(lost) == ["held", "queued", "retrying"]
    assert {t: fold.tasks[t].state for t in fold.tasks} == {
        "ok": "SUCCESS", "rejected": "REJECTED", "queued": "LOST", "held": "LOST", "retrying": "LOST"}
    assert (fold.tasks["held"].exception, fold.tasks["held"].finished) == ("dropped", 200.0)
    assert set(lost) <= set(fold.dirty)  # written to history at stop
    fold.apply(ev("task-succeeded", "held", 201.0, result="4"))  # its worker's last batch, heard late
    assert (fold.tasks["held"].state, fold.tasks["held"].result) == ("SUCCESS", "4")


def test_a_task_life_is_folded_into_one_record():
    fold = Fold()
    fold.apply_many(life(result="3", runtime=0.5))
    rec = fold.tasks["t1"]
    assert (rec.state, rec.name, rec.args, rec.result, rec.runtime) == ("SUCCESS", "demo.add", "(1, 2)", "3", 0.5)
    assert (rec.sent, rec.received, rec.started, rec.finished) == (100.0, 101.0, 102.0, 103.0)
    assert (rec.queue, rec.worker) == ("default", HOST)
    assert fold.counts["SUCCESS"] == 1 and sum(fold.counts.values()) == 1


def test_a_replaced_task_follows_its_replacement_and_says_what_it_replaced():
    """Task.replace: the replacement (a chain's last task) takes the id; the replaced task ends with
    Ignore, which sends no event, so its record sat in STARTED with its own name and times."""
    fold = Fold()
    fold.apply_many(life("t1", end="task-progress", meta={"current": 1, "total": 3})[:3])
    assert fold.tasks["t1"].state == "STARTED"
    fold.apply(ev("task-sent", "t1", 110.0, name="demo.cache", args="({'v': 1},)", kwargs="{}", queue="cache",
                  parent_id="p2", root_id="t1", retries=0))
    rec = fold.tasks["t1"]
    assert (rec.name, rec.replaced, rec.state, rec.args, rec.queue) == (
        "demo.cache", "demo.add", "PENDING", "({'v': 1},)", "cache")
    assert (rec.received, rec.started, rec.worker, rec.parent_id) == (None, None, None, "p2")
    assert fold.counts["PENDING"] == 1 and fold.counts["STARTED"] == 0
    fold.apply_many([ev("task-received", "t1", 111.0, name="demo.cache", retries=0),
                     ev("task-started", "t1", 112.0), ev("task-succeeded", "t1", 113.0, result="'ok'")])
    assert (rec.state, rec.sent, rec.received, rec.started, rec.finished) == ("SUCCESS", 110.0, 111.0, 112.0, 113.0)
    fold.apply(ev("task-received", "t1", 101.5, name="demo.add", args="(1, 2)", retries=0))  # heard late
    assert (rec.name, rec.args, rec.state, rec.received) == ("demo.cache", "({'v': 1},)", "SUCCESS", 111.0)
    fold.apply(ev("task-received", "t1", 120.0, name="demo.store", retries=0))  # replaced once more
    assert (rec.name, rec.replaced, rec.state, rec.finished) == ("demo.store", "demo.add", "RECEIVED", None)
    assert fold.counts["SUCCESS"] == 0 and fold.counts["RECEIVED"] == 1


def test_late_events_never_move_a_finished_task_back():
    fold = Fold()
    events = life(result="3")
    fold.apply_many([events[3], events[0], events[2], events[1], ev("task-retried", ts=99.0)])
    rec = fold.tasks["t1"]
    assert rec.state == "SUCCESS"
    assert rec.received == 101.0 and rec.started == 102.0  # late events still fill in their fields
    fold.apply(ev("task-failed", ts=104.0, exception="X"))
    assert rec.state == "SUCCESS"


def test_success_outranks_failure_and_failure_is_counted_once():
    fold = Fold()
    fold.apply_many(life(end="task-failed", exception="ValueError('x')", traceback="Traceback..."))
    assert fold.tasks["t1"].state == "FAILURE"
    fold.apply(ev("task-succeeded", ts=110.0, result="1"))
    assert fold.tasks["t1"].state == "SUCCESS"
    assert fold.counts["SUCCESS"] == 1 and fold.counts["FAILURE"] == 0


def test_retry_then_a_new_attempt_is_legit():
    fold = Fold()
    fold.apply_many(life()[:3])
    fold.apply(ev("task-retried", ts=103.0, exception="RuntimeError('again')"))
    assert fold.tasks["t1"].state == RETRY
    fold.apply(ev("task-received", ts=104.0, retries=1))
    fold.apply(ev("task-started", ts=105.0))
    rec = fold.tasks["t1"]
    assert (rec.state, rec.retries, rec.started) == ("STARTED", 1, 105.0)
    fold.apply(ev("task-received", ts=101.5, retries=0))  # a late one from attempt 0
    assert rec.state == "STARTED"
    fold.apply(ev("task-succeeded", ts=106.0, result="1"))
    assert rec.state == "SUCCESS" and rec.exception is None
    steps = [e.type for e in EventStore.events_of(_store_of(fold), "t1")]
    assert steps.count("task-retried") == 1 and steps[-1] == "task-succeeded"
    fold.apply(ev("task-retried", ts=105.5, exception="late"))  # after the next attempt: kept, no move
    assert rec.state == "SUCCESS" and len(rec.attempts) == 2


def _store_of(fold: Fold) -> EventStore:
    store = EventStore()
    store._fold = fold
    return store


def test_progress_meta_and_lost_when_the_worker_goes_offline():
    fold = Fold()
    fold.apply_many(life()[:3])
    fold.apply(ev("task-progress", ts=103.0, state="PROGRESS", meta={"current": 3, "total": 10}))
    rec = fold.tasks["t1"]
    assert rec.state == "PROGRESS" and rec.progress == {"current": 3, "total": 10}
    fold.apply({"type": "worker-offline", "hostname": HOST, "timestamp": 104.0})
    assert rec.state == "LOST" and "offline" in rec.exception
    fold.apply(ev("task-started", ts=105.0))
    assert rec.state == "LOST"


def test_heartbeat_expiry_and_a_new_worker_pid_lose_running_tasks():
    fold = Fold()
    fold.apply({"type": "worker-online", "hostname": HOST, "timestamp": 100.0, "local_received": 100.0,
                "freq": 2.0, "pid": 1})
    fold.apply_many(life("a")[:3])
    assert fold.expire_workers(now=104.0) == []
    assert fold.expire_workers(now=106.0) == [HOST]
    assert fold.tasks["a"].state == "LOST" and not fold.workers[HOST].online
    fold.apply({"type": "worker-heartbeat", "hostname": HOST, "timestamp": 107.0, "freq": 2.0, "pid": 1})
    fold.apply_many(life("b", start=108.0)[:3])
    fold.apply({"type": "worker-online", "hostname": HOST, "timestamp": 112.0, "freq": 2.0, "pid": 2})
    assert fold.tasks["b"].state == "LOST" and fold.workers[HOST].online


def test_the_cap_evicts_oldest_finished_tasks_first():
    fold = Fold(max_tasks=10)
    fold.apply_many(life("running")[:3])
    for i in range(30):
        fold.apply_many(life(f"t{i}", start=200.0 + i))
    assert len(fold.tasks) == 10
    assert "running" in fold.tasks and "t29" in fold.tasks and "t0" not in fold.tasks
    assert sum(fold.counts.values()) == 10


def test_memory_is_flat_under_an_endless_stream():
    fold = Fold(max_tasks=100, track_dirty=False)
    for i in range(3000):
        fold.apply_many(life(f"t{i}", start=1000.0 + i))
        fold.changed_tasks.clear()
    assert len(fold.tasks) == 100 and len(fold.finished_order) == 100
    assert len(fold.throughput) <= 3700 and len(fold.failures) <= 200


EVENT_TYPES = ["task-sent", "task-received", "task-started", "task-progress", "task-succeeded",
               "task-failed", "task-retried", "task-revoked", "task-rejected", "worker-offline",
               "worker-heartbeat"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EVENT_TYPES), st.sampled_from(["a", "b", "c"]),
                          st.floats(0, 1000), st.integers(0, 2)), max_size=40),
       st.integers(1, 3))
def test_any_event_order_keeps_the_store_consistent(steps, cap):
    fold = Fold(max_tasks=cap)
    for type_, uuid, ts, retries in steps:
        before = {k: r.state for k, r in fold.tasks.items()}
        fold.apply({"type": type_, "uuid": uuid, "hostname": HOST, "timestamp": ts, "local_received": ts,
                    "retries": retries, "state": "PROGRESS", "meta": {"current": 1, "total": 2}})
        for task_id, rec in fold.tasks.items():
            old, new = before.get(task_id, "PENDING"), rec.state
            if old == new:
                continue
            if old in FINISHED:
                assert precedence(new) < precedence(old), (old, new)
            else:
                assert new == RETRY or old == RETRY or precedence(new) <= precedence(old), (old, new)
        assert sum(fold.counts.values()) == len(fold.tasks) <= cap
        assert all(v >= 0 for v in fold.counts.values())
        assert {k: v for k, v in fold.counts.items() if v} == _recount(fold)
        assert {k: set(ids) for k, ids in fold.by_state.items() if ids} == _by_state(fold)


def _by_state(fold: Fold) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rec in fold.tasks.values():
        out.setdefault(rec.state, set()).add(rec.task_id)
    return out


def _recount(fold: Fold) -> dict[str, int]:
    out: dict[str, int] = {}
    for rec in fold.tasks.values():
        out[rec.state] = out.get(rec.state, 0) + 1
    return out


def test_subscribers_get_batches_not_one_call_per_event():
    store = EventStore().start()
    batches: list[Changes] = []
    got = threading.Event()

    def listener(changes: Changes) -> None:
        batches.append(changes)
        got.set()

    unsubscribe = store.subscribe(listener)
    try:
        for i in range(2000):
            store.ingest_many(life(f"t{i}", start=100.0 + i))
        assert got.wait(2)
        wait_until(lambda: sum(len(b.tasks) for b in batches) >= 2000, timeout=5, every=0.02)
        assert len(batches) < 20  # 8000 events, a handful of batches
        assert all(isinstance(b.tasks, frozenset) for b in batches)
        unsubscribe()
        count = len(batches)
        heard = threading.Event()  # a listener still subscribed hears the late batch: so would the old one
        store.subscribe(lambda changes: "late" in changes.tasks and heard.set())
        store.ingest_many(life("late"))
        assert heard.wait(5)
        assert len(batches) == count
    finally:
        store.stop()


def test_queries_filter_sort_and_count():
    store = EventStore()
    store.ingest_many(life("ok1", 100.0, result="3", runtime=0.2))
    store.ingest_many(life("bad", 110.0, end="task-failed", exception="ValueError('x')"))
    store.ingest_many(life("ok2", 120.0, result="3", runtime=0.9))
    store.ingest_many(life("run", 130.0)[:3])
    assert [r.task_id for r in store.query()] == ["run", "ok2", "bad", "ok1"]
    assert [r.task_id for r in store.query(state="success", sort_key="runtime")] == ["ok2", "ok1"]
    assert [r.task_id for r in store.query(search="BAD")] == ["bad"]
    assert [r.task_id for r in store.query(sort_key="received", reverse=False, limit=2)] == ["ok1", "bad"]
    assert store.counts_by_state() == {"SUCCESS": 2, "FAILURE": 1, "STARTED": 1}
    assert [r.task_id for r in store.recent_failures(5)] == ["bad"]
    assert store.wait_for("ok1", {"SUCCESS"}, timeout=0.1).task_id == "ok1"
    assert store.wait_for("run", None, timeout=0.1) is None
    assert len(store.throughput(5)) == 5


def test_history_is_written_in_batches_and_reloaded(tmp_path):
    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    for i in range(500):
        store.ingest_many(life(f"t{i}", start=100.0 + i, result=str(i)))
    store.ingest_many(life("bad", 900.0, end="task-failed", exception="ValueError('x')",
                           traceback="Traceback (most recent call last): ..."))
    store.stop()
    again = EventStore(history=db, max_tasks=100).start()
    try:
        assert len(again) == 100 and again.get("bad").traceback.startswith("Traceback")
        assert again.get("t499").result == "499"
        rows = read_tasks(db, state="failure")
        assert [r["task_id"] for r in rows] == ["bad"]
        assert len(read_tasks(db, limit=1000)) == 501
        assert [r.task_id for r in again.recent_failures(8)] == ["bad"]  # the Dashboard's, after a restart
        again.ingest_many(life("worse", 950.0, end="task-failed", exception="KeyError('y')"))
        assert [r.task_id for r in again.recent_failures(8)] == ["worse", "bad"]
    finally:
        again.stop()


def test_a_corrupt_history_db_is_one_clear_error_and_does_not_stop_the_store(tmp_path):
    db = tmp_path / "history.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match="cannot read task history"):
        read_tasks(db)
    messages: list[str] = []
    store = EventStore(history=db, log=messages.append).start()
    store.ingest_many(life())
    store.stop()
    assert store.get("t1").state == "SUCCESS"
    assert any("moved to history.sqlite3.corrupt-" in m for m in messages), messages
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.corrupt-*")] == ["history.sqlite3.corrupt"]
    assert [r["task_id"] for r in read_tasks(db)] == ["t1"]  # a fresh history from there on


class Ears:
    """A stand-in feeding source: only its connection state matters here."""

    def __init__(self) -> None:
        self.connected_since: float | None = None

    def start(self) -> None: ...

    def stop(self) -> None: ...


def test_heartbeat_expiry_waits_until_the_receiver_has_heard_long_enough():
    store = EventStore()
    ears = Ears()
    store.attach(ears)
    old = time.time() - 60
    store.ingest({"type": "worker-online", "hostname": HOST, "timestamp": old, "local_received": old,
                  "freq": 2.0, "pid": 1})
    store.ingest_many(life("run", start=old)[:3])
    store._expire()  # disconnected: a silence that may be ours
    assert store.get("run").state == "STARTED"
    ears.connected_since = time.monotonic()
    store._expire()  # just reconnected: give the workers a heartbeat window
    assert store.get("run").state == "STARTED"
    ears.connected_since = time.monotonic() - 10
    store._expire()
    assert store.get("run").state == "LOST" and not store.workers()[0].online


# -- purged tasks (a purge deleted their messages) ---------------------------------------------------

def purged(ids: list[str] | None, ts: float = 200.0, queue: str = "youtube") -> dict:
    """The event a purge sends (embedded/control/queues.py announce_purge)."""
    return {"type": "stalk-purged", "hostname": "cli@host", "timestamp": ts, "local_received": ts,
            "queue": queue, "ids": ids, "by": "stalk queues --purge (me@host)", "count": 3}


def test_a_purge_marks_the_tasks_it_deleted_purged_with_its_reason():
    fold = Fold(track_dirty=True)
    fold.apply_many(life("waiting")[:1] + life("done", result="3") + life("held")[:3] + life("retrying")[:3])
    fold.apply(ev("task-retried", "retrying", 104.0, exception="RuntimeError('429')"))
    fold.dirty.clear()
    fold.apply(purged(["waiting", "retrying", "done", "held", "unknown"]))
    states = {t: r.state for t, r in fold.tasks.items()}
    # a finished task or one a worker holds keeps its state; an id the store never saw is not added
    assert states == {"waiting": "PURGED", "done": "SUCCESS", "held": "STARTED", "retrying": "PURGED"}
    rec = fold.tasks["retrying"]
    assert rec.exception.startswith("purged from queue youtube at ")
    assert rec.exception.endswith(" by stalk queues --purge (me@host)")
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(200.0)) in rec.exception
    assert (rec.finished, rec.traceback, rec.retried) == (200.0, None, 104.0)
    assert set(fold.dirty) == {"waiting", "retrying"}  # written to history
    assert fold.counts["PURGED"] == 2 and fold.counts["RETRY"] == 0 and fold.counts["PENDING"] == 0
    assert list(fold.finished_order)[-2:] == ["waiting", "retrying"]  # evicted like finished tasks
    steps = EventStore.events_of(_store_of(fold), "retrying")
    assert (steps[-1].type, steps[-1].fields["reason"]) == ("task-purged", rec.exception)


def test_a_later_event_of_a_purged_task_wins_an_earlier_one_does_not():
    """Its message was not purged after all (taken by a worker just before): the worker's events win."""
    fold = Fold()
    fold.apply_many(life("a")[:1] + life("b")[:1])
    fold.apply(purged(["a", "b"], ts=200.0))
    fold.apply(ev("task-sent", "a", 150.0, name="demo.add", queue="youtube", retries=0))  # heard late
    fold.apply(ev("task-retried", "a", 199.0, exception="late"))
    assert fold.tasks["a"].state == "PURGED" and fold.tasks["a"].exception.startswith("purged")
    fold.apply_many([ev("task-received", "b", 201.0, retries=0), ev("task-started", "b", 202.0)])
    rec = fold.tasks["b"]
    assert (rec.state, rec.exception, rec.finished, rec.received) == ("STARTED", None, None, 201.0)
    fold.apply(ev("task-succeeded", "b", 203.0, result="3"))
    assert (rec.state, rec.finished) == ("SUCCESS", 203.0) and "b" in fold.finished_order
    assert fold.counts["PURGED"] == 1 and fold.counts["SUCCESS"] == 1


def test_a_purge_without_ids_marks_what_waited_in_that_queue_and_says_it_is_inferred():
    """RabbitMQ purges without naming the messages: tasks sent to the queue and not received since."""
    fold = Fold()
    fold.apply_many(life("waiting")[:1] + life("running")[:3])
    fold.apply(ev("task-sent", "elsewhere", 100.0, name="demo.add", queue="other", retries=0))
    fold.apply(ev("task-sent", "after", 300.0, name="demo.add", queue="default", retries=0))
    fold.apply_many(life("retrying")[:3] + [ev("task-retried", "retrying", 104.0, exception="E()")])
    fold.apply(purged(None, ts=200.0, queue="default"))
    states = {t: r.state for t, r in fold.tasks.items()}
    assert states == {"waiting": "PURGED", "running": "STARTED", "elsewhere": "PENDING", "after": "PENDING",
                      "retrying": "PURGED"}
    assert "inferred" in fold.tasks["waiting"].exception


def test_a_purge_reason_is_printable_whatever_the_event_says():
    fold = Fold()
    fold.apply_many(life("a")[:1])
    fold.apply({**purged(["a"], queue="default"), "by": "\x1b[31mred\x07"})
    assert fold.tasks["a"].exception.isprintable() and "\\x1b[31mred\\x07" in fold.tasks["a"].exception


def test_purged_tasks_stay_purged_across_a_restart(tmp_path):
    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    store.ingest_many(life("waiting")[:1] + life("ok", result="1"))
    store.ingest(purged(["waiting", "ok"], queue="default"))
    store.stop()
    again = EventStore(history=db).start()
    try:
        rec = again.get("waiting")
        assert rec.state == "PURGED" and rec.exception.startswith("purged from queue default at ")
        assert again.counts_by_state() == {"PURGED": 1, "SUCCESS": 1}
        assert [r.task_id for r in again.query(state="PURGED")] == ["waiting"]
        assert "waiting" not in again.unfinished()  # not looked up in the result backend
        assert again.lose_unfinished("dropped") == 0  # nor made LOST when an embedded broker goes
        assert [r["task_id"] for r in read_tasks(db, state="purged")] == ["waiting"]
        again.ingest(ev("task-received", "waiting", 201.0, retries=0))  # it was not purged after all
        assert again.get("waiting").state == "RECEIVED"
    finally:
        again.stop()
    assert read_tasks(db, state="received")[0]["exception"] is None


# -- the order of a task's steps -----------------------------------------------------------------------

def test_a_retried_task_keeps_its_first_sent_and_its_timeline_runs_in_order():
    """A retry sends a new message (a new task-sent): `sent` stays the first, never after received."""
    fold = Fold()
    fold.apply_many(life("t1")[:3])  # sent 100, received 101, started 102
    for attempt, at in ((1, 110.0), (2, 120.0)):  # Task.retry sends the new message, then task-retried
        fold.apply(ev("task-sent", ts=at - 7.1, name="demo.add", queue="default", retries=attempt))
        fold.apply(ev("task-retried", ts=at - 7, exception=f"E({attempt})"))
        fold.apply_many([ev("task-received", ts=at, retries=attempt), ev("task-started", ts=at + 1)])
    fold.apply(ev("task-sent", ts=124.9, name="demo.add", queue="default", retries=3))  # not received yet
    fold.apply(ev("task-retried", ts=125.0, exception="E(3)"))
    rec = fold.tasks["t1"]
    assert (rec.state, rec.sent, rec.received, rec.started, rec.retries) == ("RETRY", 100.0, 120.0, 121.0, 3)
    steps = EventStore.events_of(_store_of(fold), "t1")
    assert [(e.type, e.timestamp) for e in steps] == [
        ("task-sent", 100.0), ("task-retried", 103.0), ("task-retried", 113.0), ("task-received", 120.0),
        ("task-started", 121.0), ("task-retried", 125.0)]


def test_a_task_sent_stamped_after_its_task_received_still_comes_first():
    """The client stamps task-sent once the message is out: a quick worker may stamp task-received first."""
    for order in ((0, 1), (1, 0)):
        fold = Fold()
        events = [ev("task-sent", ts=100.0004, name="demo.add", queue="default", retries=0),
                  ev("task-received", ts=100.0001, retries=0)]
        fold.apply_many(events[i] for i in order)
        fold.apply(ev("task-started", ts=100.0001))
        rec = fold.tasks["t1"]
        assert rec.sent == rec.received == 100.0001
        steps = EventStore.events_of(_store_of(fold), "t1")
        assert [e.type for e in steps] == ["task-sent", "task-received", "task-started"]


def test_a_retried_task_reloaded_from_history_shows_its_last_retry_in_order(tmp_path):
    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    store.ingest_many(life("t1")[:3] + [ev("task-sent", ts=102.9, name="demo.add", queue="default", retries=1),
                                        ev("task-retried", ts=103.0, exception="E()"),
                                        ev("task-received", ts=104.0, retries=1)])
    store.stop()
    again = EventStore(history=db).start()
    try:
        assert [(e.type, e.timestamp) for e in again.events_of("t1")] == [
            ("task-sent", 100.0), ("task-retried", 103.0), ("task-received", 104.0)]
    finally:
        again.stop()


def test_a_routed_event_fills_only_a_missing_queue_of_a_known_task_and_running_on_finds_others_tasks():
    """plain_workers: the queue a worker's query_task answer names (a plain client sends no task-sent), and the
    running tasks of workers Stalk does not run (their PROGRESS is read from the result backend)."""
    store = EventStore()
    store.ingest_many(life("plain")[1:3])  # received and started, never sent: no queue
    store.ingest_many(life("stalks")[:3])  # sent with its queue
    store.ingest({"type": "stalk-routed", "uuid": "plain", "queue": "imports", "routing_key": "imports"})
    store.ingest({"type": "stalk-routed", "uuid": "stalks", "queue": "other", "routing_key": "other"})
    store.ingest({"type": "stalk-routed", "uuid": "unknown", "queue": "imports"})
    assert (store.get("plain").queue, store.get("plain").routing_key) == ("imports", "imports")
    assert store.get("stalks").queue == "default"
    assert store.get("unknown") is None
    store.ingest(ev("task-progress", "plain", 103.0, state="PROGRESS", meta={"current": 1}))
    assert sorted(store.running_on(lambda worker: worker == HOST)) == [
        ("plain", "PROGRESS", {"current": 1}), ("stalks", "STARTED", None)]
    assert store.running_on(lambda worker: worker != HOST) == []


def test_an_inferred_queue_is_marked_kept_in_history_and_a_queue_someone_said_replaces_it(tmp_path):
    """plain_workers' last resort: a queue inferred from the app's routes (source "route") fills only a
    missing queue and stays marked; a worker's or backend's answer, or a late task-sent, replaces it."""
    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    try:
        for uuid in ("a", "b", "c"):
            store.ingest_many(life(uuid)[1:])  # never sent: no queue
        for uuid in ("a", "b", "c"):
            store.ingest({"type": "stalk-routed", "uuid": uuid, "queue": "media", "source": "route"})
        store.ingest({"type": "stalk-routed", "uuid": "a", "queue": "other", "source": "route"})  # no second guess
        store.ingest({"type": "stalk-routed", "uuid": "b", "queue": "reports", "routing_key": "reports"})
        store.ingest(ev("task-sent", "c", 99.0, name="demo.add", queue="imports", routing_key="imports"))
        store.ingest({"type": "stalk-routed", "uuid": "c", "queue": "media", "source": "route"})
        store.ingest({"type": "stalk-routed", "uuid": "c", "queue": "media", "source": "made-up"})
        assert [(store.get(u).queue, store.get(u).queue_source) for u in "abc"] == [
            ("media", "route"), ("reports", None), ("imports", None)]
    finally:
        store.stop()
    assert {r["task_id"]: (r["queue"], r["queue_source"]) for r in read_tasks(db)} == {
        "a": ("media", "route"), "b": ("reports", None), "c": ("imports", None)}


def test_a_task_rebuilt_from_an_extended_result_keeps_the_queue_the_result_names():
    """Events missed while Stalk was away are rebuilt from the result backend (reconcile): with
    result_extended the result names the task's queue, which the rebuilt task-received carried in vain."""
    from stalk.embedded.events.reconcile import final_event, received_event

    meta = {"status": "SUCCESS", "result": 3, "date_done": "2026-01-01T12:00:00+00:00", "name": "proj.add",
            "args": [1, 2], "kwargs": {}, "worker": HOST, "retries": 0, "queue": "media"}
    store = EventStore()
    store.ingest({"type": "stalk-routed", "uuid": "t1", "queue": "x"})  # unknown yet: ignored
    store.ingest_many([received_event("t1", meta), final_event("t1", meta)])
    rec = store.get("t1")
    assert (rec.state, rec.queue, rec.queue_source, rec.worker) == ("SUCCESS", "media", None, HOST)


def _retried_requeued_then_done(uuid: str = "t1") -> list[dict]:
    """Retried once, requeued once (its worker died), then succeeded."""
    return life(uuid)[:3] + [
        ev("task-sent", uuid, 102.9, name="demo.add", queue="default", retries=1),
        ev("task-retried", uuid, 103.0, exception="RuntimeError('not yet')"),
        ev("task-received", uuid, 104.0, retries=1), ev("task-started", uuid, 104.5),
        {"type": REQUEUED_EVENT, "uuid": uuid, "hostname": "w2@host", "timestamp": 105.0,
         "reason": "requeued: worker w2@host (pid 7) died holding it"},
        ev("task-received", uuid, 106.0, retries=1), ev("task-started", uuid, 106.5),
        ev("task-succeeded", uuid, 107.0, result="3", runtime=0.5)]


def test_retries_and_requeues_survive_a_restart_in_the_record_the_timeline_and_read_tasks(tmp_path):
    """History kept only the last state: a task retried or requeued, then done, lost every trace of it."""
    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    store.ingest_many(_retried_requeued_then_done())
    store.stop()
    before = list(store.get("t1").attempts)
    again = EventStore(history=db).start()
    try:
        rec = again.get("t1")
        assert rec.state == "SUCCESS" and rec.attempts == before == [
            (103.0, HOST, "RuntimeError('not yet')"), (105.0, "w2@host", "requeued: worker w2@host (pid 7) died holding it")]
        assert [(e.type, e.timestamp) for e in again.events_of("t1")] == [
            ("task-sent", 100.0), ("task-retried", 103.0), ("task-requeued", 105.0), ("task-received", 106.0),
            ("task-started", 106.5), ("task-succeeded", 107.0)]
    finally:
        again.stop()
    (row,) = read_tasks(db)
    assert row["attempts"] == [
        {"kind": "retry", "at": 103.0, "worker": HOST, "reason": "RuntimeError('not yet')"},
        {"kind": "requeued", "at": 105.0, "worker": "w2@host", "reason": "requeued: worker w2@host (pid 7) died holding it"}]


def test_attempts_read_back_from_any_db_are_printable_and_bad_ones_are_dropped(tmp_path):
    """A db written by hand or an older Stalk: the attempts column is data, never trusted."""
    import json
    import sqlite3

    db = tmp_path / "history.sqlite3"
    store = EventStore(history=db).start()
    store.ingest_many(life("odd") + life("junk", 200.0) + life("plain", 300.0))
    store.stop()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE tasks SET attempts = ? WHERE task_id = 'odd'", (json.dumps(
            [[101.5, "w\x1b[2Jx", "E('\x1b]0;pwned\x07')"], ["not a time", None, "requeued: x"], "not a list", [1, 2],
             [float("nan"), None, "E()"], [1e300, None, "E()"]]),))
        conn.execute("UPDATE tasks SET attempts = '{not json' WHERE task_id = 'junk'")
    conn.close()
    rows = {r["task_id"]: r for r in read_tasks(db)}
    (odd, late, nan, far) = rows["odd"]["attempts"]
    assert nan["at"] is None and far["at"] is None
    assert odd["worker"].isprintable() and odd["reason"].isprintable() and "\x1b" not in odd["reason"]
    assert (odd["kind"], odd["at"], late["kind"], late["at"]) == ("retry", 101.5, "requeued", None)
    assert rows["junk"]["attempts"] == rows["plain"]["attempts"] == []
    again = EventStore(history=db).start()
    try:
        assert {"task-retried", "task-requeued"} <= {e.type for e in again.events_of("odd")}
        assert again.get("junk").attempts is None
    finally:
        again.stop()


def test_a_history_db_from_before_attempts_gains_the_column_and_keeps_its_rows(tmp_path):
    import sqlite3

    from stalk.embedded.events.records import TASK_FIELDS

    db = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(f"CREATE TABLE tasks ({', '.join(c + (' TEXT PRIMARY KEY' if c == 'task_id' else '') for c in TASK_FIELDS)})")
        conn.execute("INSERT INTO tasks (task_id, name, state, retries, updated) VALUES ('old', 'demo.add', 'SUCCESS', 1, 5.0)")
    conn.close()
    store = EventStore(history=db).start()
    try:
        assert store.get("old").attempts is None
        store.ingest_many(_retried_requeued_then_done("new"))
    finally:
        store.stop()
    rows = {r["task_id"]: r for r in read_tasks(db)}
    assert rows["old"]["attempts"] == [] and [a["kind"] for a in rows["new"]["attempts"]] == ["retry", "requeued"]


def test_a_purge_heard_before_its_tasks_task_sent_still_marks_them_purged():
    """A client's task-sent events leave in batches, a purge's event at once: the purge may be folded
    first. A task sent before the purge is then PURGED when its task-sent comes; one sent after it (a new
    message with that id) is not, nor one a worker had received."""
    fold = Fold()
    fold.apply(purged(["early", "later", "taken"], ts=200.0))
    assert not fold.tasks  # nothing added for ids never seen
    fold.apply(ev("task-sent", "early", 150.0, name="demo.add", queue="youtube", retries=0))
    fold.apply(ev("task-sent", "later", 250.0, name="demo.add", queue="youtube", retries=0))
    fold.apply_many([ev("task-received", "taken", 190.0, retries=0),
                     ev("task-sent", "taken", 180.0, name="demo.add", queue="youtube", retries=0)])
    states = {t: r.state for t, r in fold.tasks.items()}
    assert states == {"early": "PURGED", "later": "PENDING", "taken": "RECEIVED"}
    assert fold.tasks["early"].exception.startswith("purged from queue youtube at ")
    assert not fold.purged_unseen
