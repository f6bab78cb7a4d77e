"""/tasks, /tasks/{id}, /tasks/stats, /tasks/prepare and /workers over a stack's socket, and RemoteEvents
(the panel's `stack.events` on a RemoteStack) against the store it reads: an eager stack whose store holds
real eager runs and a few hundred tasks folded from event dicts (names, queues, workers, a parent)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stalk.embedded import Stack
from stalk.embedded.events import Changes, StoreBusy, TaskRecord
from stalk.embedded.service import ApiError, StackClient
from stalk.embedded.service.hub import MAX_PENDING
from stalk.embedded.status_file import read_status

from .api_support import client_of, remote_of
from .conftest import module_stack, wait_until

N = 300
NAMES = ("demo.add", "demo.mul", "report.build")
QUEUES = ("default", "slow")
WORKERS = ("alpha@host", "beta@host")
ENDS = ("task-succeeded", "task-failed", "task-succeeded", "task-revoked")
PARENT = "parent-0000"


def life(i: int, t0: float) -> list[dict[str, Any]]:
    """One task's events: sent, received, started, an end (some never end)."""
    uuid, host, ts = f"t-{i:04d}", WORKERS[i % 2], t0 + i * 0.01
    common = {"uuid": uuid, "hostname": host, "local_received": ts}
    sent = {"type": "task-sent", "timestamp": ts, "name": NAMES[i % 3], "args": f"({i}, 'x{i % 7}')",
            "kwargs": "{}", "queue": QUEUES[i % 2], "routing_key": QUEUES[i % 2], "retries": 0,
            "parent_id": PARENT if i % 50 == 0 else None, "root_id": PARENT if i % 50 == 0 else None}
    steps = [{**common, **sent},
             {**common, "type": "task-received", "timestamp": ts + 0.001, "name": NAMES[i % 3], "retries": 0},
             {**common, "type": "task-started", "timestamp": ts + 0.002}]
    if i % 10 != 9:  # every tenth stays STARTED
        end = ENDS[i % 4]
        fields = ({"result": str(i), "runtime": (i % 13) / 10} if end == "task-succeeded"
                  else {"exception": f"ValueError({i})", "traceback": "Traceback..."} if end == "task-failed"
                  else {"terminated": False})
        steps.append({**common, "type": end, "timestamp": ts + 0.003 + (i % 13) / 10, **fields})
    return steps


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("api-tasks") / "data", broker={"mode": "eager"},
                      app="tests.apps.events_app:eager_app", beat=False) as running:
        store = running.events
        t0 = time.time() - 60
        store.ingest_many([{"type": "task-sent", "uuid": PARENT, "hostname": "alpha@host", "timestamp": t0 - 1,
                            "local_received": t0 - 1, "name": "report.all", "args": "()", "kwargs": "{}",
                            "queue": "default", "retries": 0}])
        store.ingest_many(e for i in range(N) for e in life(i, t0))
        now = time.time()
        for host, processed in zip(WORKERS, (17, 4), strict=True):
            store.ingest({"type": "worker-heartbeat", "hostname": host, "timestamp": now, "local_received": now,
                          "freq": 60.0, "active": 1, "processed": processed, "loadavg": [0.5, 0.25, 0.1],
                          "sw_ver": "5.4.0", "pid": 4242})
        app = running.app
        for result in (app.tasks["ev.add"].delay(2, 3), app.tasks["ev.boom"].delay("api-boom"),
                       app.tasks["ev.flaky"].delay(1)):
            assert store.wait_for(result.id, timeout=10) is not None
        wait_until(lambda: read_status(running.paths.state), 10, 0.02)  # the API's address, for clients
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[StackClient]:
    with client_of(stack) as api:
        yield api


def ids(records: list[TaskRecord]) -> list[str]:
    return [r.task_id for r in records]


def listed_ids(page: dict[str, Any]) -> list[str]:
    return [t["task_id"] for t in page["tasks"]]


def test_the_newest_first_with_the_total_and_every_field(stack: Stack, client: StackClient) -> None:
    page = client.get("/tasks")
    store = stack.events
    assert page["total"] == len(store) >= N + 4
    assert listed_ids(page) == ids(store.query(limit=500))
    first = page["tasks"][0]
    rec = store.get(first["task_id"])
    assert {k: v for k, v in first.items() if k != "attempts"} == rec.as_dict()
    flaky = next(t for t in page["tasks"] if t["name"] == "ev.flaky")
    assert [a["kind"] for a in flaky["attempts"]] == ["retry"] and "attempt 0 failed" in flaky["attempts"][0]["reason"]


@pytest.mark.parametrize("params", [
    {"state": "failure"}, {"state": "success,revoked"}, {"name": "demo."}, {"queue": "slow"},
    {"worker": "beta"}, {"search": "X3"}, {"search": "t-01"}, {"state": "started", "worker": "alpha"},
    {"name": "report", "queue": "default", "search": "x1"}, {"state": "PENDING"}, {"name": "no.such.task"},
])
def test_filters_answer_as_the_store_does_with_the_number_of_matches(stack: Stack, client: StackClient,
                                                                     params: dict[str, str]) -> None:
    page = client.get("/tasks", **params, limit=20)
    every = stack.events.query(**params, limit=None)
    assert listed_ids(page) == ids(every)[:20]
    assert page["total"] == len(every)
    if params == {"state": "failure"}:
        assert page["total"] == sum(1 for i in range(N) if i % 10 != 9 and i % 4 == 1) + 1  # and ev.boom


@pytest.mark.parametrize("sort", ["received", "name", "state", "runtime", "worker", "queue"])
@pytest.mark.parametrize("reverse", [True, False])
def test_every_sort_key_both_ways(stack: Stack, client: StackClient, sort: str, reverse: bool) -> None:
    page = client.get("/tasks", sort=sort, reverse=str(reverse).lower(), limit=50, search="demo")
    assert listed_ids(page) == ids(stack.events.query(sort_key=sort, reverse=reverse, limit=50, search="demo"))
    assert page["total"] == len(stack.events.query(search="demo", limit=None))


def test_pages_follow_each_other(stack: Stack, client: StackClient) -> None:
    pages = [client.get("/tasks", sort="name", reverse="false", limit=64, offset=offset) for offset in range(0, 400, 64)]
    assert {p["total"] for p in pages} == {len(stack.events)}
    walked = [task_id for p in pages for task_id in listed_ids(p)]
    assert walked == ids(stack.events.query(sort_key="name", reverse=False, limit=None))
    assert client.get("/tasks", offset=10_000)["tasks"] == []
    assert client.get("/tasks", count="false", limit=3)["total"] is None


def test_rows_are_the_records_values_in_their_own_order(stack: Stack, client: StackClient) -> None:
    rows = client.get("/tasks", shape="rows", search="ev.", limit=10)
    records = client.get("/tasks", search="ev.", limit=10)
    assert rows["total"] == records["total"] and "tasks" not in rows
    assert rows["fields"] == [f.name for f in dataclasses.fields(TaskRecord) if f.name != "arrival"]
    for values, listed in zip(rows["rows"], records["tasks"], strict=True):
        row = dict(zip(rows["fields"], values, strict=True))
        assert {k: v for k, v in row.items() if k != "attempts"} == {k: v for k, v in listed.items() if k != "attempts"}
        assert [[a["at"], a["worker"], a["reason"]] for a in listed["attempts"]] == (row["attempts"] or [])


def test_one_task_with_its_timeline_and_children(stack: Stack, client: StackClient) -> None:
    detail = client.get(f"/tasks/{PARENT}")
    assert detail["task"]["name"] == "report.all" and detail["task"]["state"] == "PENDING"
    assert sorted(c["task_id"] for c in detail["children"]) == [f"t-{i:04d}" for i in range(0, N, 50)]
    assert [e["type"] for e in detail["events"]] == ["task-sent"]
    failed = client.get("/tasks/t-0001")
    assert [e["type"] for e in failed["events"]] == ["task-sent", "task-received", "task-started", "task-failed"]
    assert failed["events"][-1]["fields"] == {"exception": "ValueError(1)"}
    assert failed["events"][1]["hostname"] == "beta@host" and failed["children"] == []


def test_errors_are_json_with_a_fitting_status(client: StackClient) -> None:
    with pytest.raises(ApiError) as unknown:
        client.get("/tasks/no-such-task")
    assert unknown.value.status == 404 and "no task 'no-such-task'" in unknown.value.message
    for params, where in [({"limit": 0}, "limit"), ({"limit": 5001}, "limit"), ({"offset": -1}, "offset"),
                          ({"sort": "colour"}, "sort"), ({"reverse": "sideways"}, "reverse")]:
        with pytest.raises(ApiError) as bad:
            client.get("/tasks", **params)
        assert bad.value.status == 422 and bad.value.message.startswith(f"query.{where}: ")  # the "error" key
    with pytest.raises(ApiError) as bad:
        client.post("/tasks/prepare", {"sort": ["colour"]})
    assert bad.value.status == 422 and "sort" in bad.value.message
    raw = client._http.get(client.base + "/tasks", params={"limit": "many"})
    assert raw.status_code == 422 and set(raw.json()) == {"error"}


def test_stats_are_the_stores(stack: Stack, client: StackClient) -> None:
    stats = client.get("/tasks/stats", seconds=5, n=3)
    store = stack.events
    assert stats["total"] == len(store) and stats["counts"] == store.counts_by_state()
    assert len(stats["throughput"]) == 5 and set(stats["throughput"][0]) == {"succeeded", "failed"}
    assert [t["task_id"] for t in stats["recent_failures"]] == ids(store.recent_failures(3))
    assert client.get("/tasks/stats", seconds=0, n=0)["throughput"] == []


def test_workers_as_the_events_describe_them(client: StackClient) -> None:
    workers = {w["hostname"]: w for w in client.get("/workers")}
    assert {"alpha@host", "beta@host"} <= set(workers)
    alpha = workers["alpha@host"]
    assert (alpha["online"], alpha["processed"], alpha["active"], alpha["sw_ver"], alpha["pid"]) == (
        True, 17, 1, "5.4.0", 4242)
    assert alpha["load"] == [0.5, 0.25, 0.1]


def test_prepare_builds_what_a_view_will_need(stack: Stack, client: StackClient) -> None:
    client.post("/tasks/prepare", {"sort": ["worker", "runtime"], "search": True})
    assert {"worker", "runtime", "search"} <= set(stack.events._indexes)
    page = client.get("/tasks", sort="worker", search="x2", limit=10)
    assert listed_ids(page) == ids(stack.events.query(sort_key="worker", search="x2", limit=10))


# -- RemoteEvents: the panel's stack.events on a RemoteStack ---------------------------------------


def test_remote_events_answer_with_the_stores_types(stack: Stack) -> None:
    store = stack.events
    with remote_of(stack) as remote:
        events = remote.events
        got = events.query(state="failure", sort_key="runtime", reverse=False, limit=30)
        assert ids(got) == ids(store.query(state="failure", sort_key="runtime", reverse=False, limit=30))
        # a page's records leave the long texts out (remote_events.PAGE_OMITS); one task's read has them
        blank = dict.fromkeys(("result", "exception", "traceback"))
        assert all(isinstance(r, TaskRecord) and r.as_dict() == {**store.get(r.task_id).as_dict(), **blank}
                   for r in got)
        full = events.get(got[0].task_id)
        assert full.as_dict() == store.get(got[0].task_id).as_dict() and full.traceback and full.exception
        flaky = next(r for r in events.query(name="ev.flaky") if r.attempts)
        assert flaky.attempts == store.get(flaky.task_id).attempts
        assert events.get(PARENT).name == "report.all" and events.get("no-such-task") is None
        odd = "odd/id?x=1#frag %"
        store.ingest({"type": "task-sent", "uuid": odd, "hostname": "h", "timestamp": time.time(), "name": "odd"})
        assert events.get(odd).task_id == odd and events.events_of(odd)[0].type == "task-sent"
        assert sorted(ids(events.children_of(PARENT))) == sorted(ids(store.children_of(PARENT)))
        assert events.events_of("t-0002") == store.events_of("t-0002")
        assert events.counts_by_state() == store.counts_by_state() and len(events) == len(store)
        assert events.throughput(4) and len(events.throughput(4)) == 4
        assert ids(events.recent_failures(2)) == ids(store.recent_failures(2))
        assert [(w.hostname, w.load) for w in events.workers() if w.hostname in WORKERS] == [
            ("alpha@host", (0.5, 0.25, 0.1)), ("beta@host", (0.5, 0.25, 0.1))]
        total, page = events.page(limit=5, offset=5, sort="name")
        assert total == len(store) and ids(page) == ids(store.query(sort_key="name", limit=10))[5:]
        events.prepare_sort("queue", keep=True)
        events.prepare_search()
        assert "queue" in store._indexes


def test_a_quick_read_on_the_ui_thread_never_touches_the_socket(stack: Stack) -> None:
    with remote_of(stack) as remote:
        remote.client.close()  # any request would now fail: StoreBusy comes before one
        with pytest.raises(StoreBusy):
            remote.events.query(state="failure", wait=0.005)


def test_subscribers_hear_changes_and_a_resync_names_nothing(stack: Stack) -> None:
    heard: list[Changes] = []
    got = threading.Event()

    def listener(changes: Changes) -> None:
        heard.append(changes)
        got.set()

    with remote_of(stack) as remote:
        unsubscribe = remote.events.subscribe(listener)
        assert remote.feed.connected.wait(10)
        result = stack.app.tasks["ev.add"].delay(7, 8)
        wait_until(lambda: any(result.id in c.tasks for c in heard), 10, 0.02)
        heard.clear()
        t0 = time.time()  # more changes in one frame than a client keeps: a resync
        stack.events.ingest_many(e for i in range(MAX_PENDING + 100) for e in life(10_000 + i, t0)[:1])
        wait_until(lambda: any(not c.tasks and not c.workers for c in heard), 10, 0.02)
        unsubscribe()
        heard.clear()
        stack.app.tasks["ev.add"].delay(1, 1)
        time.sleep(0.5)
        assert heard == []


# -- `stalk tasks` asks the running stack (last: it moves the history db aside for a moment) -----------


@pytest.mark.procs
def test_stalk_tasks_asks_the_running_stack(stack: Stack) -> None:
    import json
    import subprocess

    from .conftest import clean_env, stalk_cmd

    history = stack.paths.history_db
    aside = history.with_name("aside.sqlite3")
    history.rename(aside)  # the CLI cannot have read these rows from the history db
    try:
        run = subprocess.run(stalk_cmd("tasks", "--data-dir", str(stack.paths.data_dir), "--json", "--state",
                                       "failure", "--name", "demo.", "--limit", "7"),
                             capture_output=True, text=True, env=clean_env(), timeout=60)
        table = subprocess.run(stalk_cmd("tasks", "--data-dir", str(stack.paths.data_dir), "--limit", "3"),
                               capture_output=True, text=True, env=clean_env(), timeout=60)
    finally:
        aside.rename(history)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert [r["task_id"] for r in rows] == ids(stack.events.query(state="failure", name="demo.", limit=7))
    assert rows and all("T" in r["received"] for r in rows)  # ISO times, as from the history db
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("TASK ID") and len(lines) == 4
    assert [line.split()[0] for line in lines[1:]] == ids(stack.events.query(limit=3))
