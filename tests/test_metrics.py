"""Prometheus metrics: Flower's names, types and labels counted from the event store, and Stalk's own
(queue depth, quota, processes, broker, task states) read at scrape time, over the API's socket and parsed
with the Prometheus client's own parser."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from stalk.embedded import Stack
from stalk.embedded.children import node_name
from stalk.embedded.events import EventStore
from stalk.embedded.events.eager import EAGER_HOST
from stalk.embedded.quota import forget_ledgers
from stalk.embedded.service.files import read_token
from stalk.embedded.service.metrics import StackMetrics, flower, metrics_endpoint
from stalk.embedded.service.metrics.flower import FlowerCollector, FlowerCounts
from stalk.embedded.service.metrics.probe import BoundedCall
from stalk.embedded.service.metrics.stalk_state import BROKER_TIMEOUT
from stalk.embedded.status_file import read_status

from .conftest import module_stack, wait_until

APP = "tests.apps.metrics_app:app"
EAGER_APP = "tests.apps.metrics_app:eager_app"
FLOWER = {  # Flower's metrics (flower/events.py): name -> (type, labels)
    "flower_events": ("counter", {"worker", "type", "task"}),
    "flower_task_runtime_seconds": ("histogram", {"worker", "task"}),
    "flower_task_prefetch_time_seconds": ("gauge", {"worker", "task"}),
    "flower_worker_prefetched_tasks": ("gauge", {"worker", "task"}),
    "flower_worker_online": ("gauge", {"worker"}),
    "flower_worker_number_of_currently_executing_tasks": ("gauge", {"worker"}),
}
BACKLOG = 5


def parse(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float | None:
    """The value of the sample `sample` whose labels include `labels` (None: no such sample)."""
    family = families[sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
                      .removesuffix("_bucket")]
    found = [s.value for s in family.samples if s.name == sample and labels.items() <= s.labels.items()]
    assert len(found) <= 1, (sample, labels, found)
    return found[0] if found else None


# -- the counting, on a store fed by hand (no processes) ----------------------------------------------


def task_events(uuid: str, name: str, worker: str, t0: float, ok: bool = True, eta: str | None = None) -> list[dict]:
    return [
        {"type": "task-sent", "uuid": uuid, "name": name, "hostname": "client@h", "timestamp": t0, "eta": eta},
        {"type": "task-received", "uuid": uuid, "name": name, "hostname": worker, "timestamp": t0 + 0.1, "eta": eta},
        {"type": "task-started", "uuid": uuid, "hostname": worker, "timestamp": t0 + 0.4},
        {"type": "task-succeeded" if ok else "task-failed", "uuid": uuid, "hostname": worker,
         "timestamp": t0 + 1.4, "runtime": 1.0},
    ]


def scrape_store(store: EventStore, counts: FlowerCounts) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FlowerCollector(counts, store))
    return parse(generate_latest(registry).decode())


def test_flower_metrics_count_the_store_events() -> None:
    store, counts = EventStore(), FlowerCounts()
    untap = store.tap(counts.tap)
    now = time.time()
    store.ingest({"type": "worker-online", "hostname": "w1@h", "timestamp": now, "freq": 2.0})
    store.ingest({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": now, "freq": 2.0, "active": 2})
    for i in range(3):
        store.ingest_many(task_events(f"a{i}", "t.add", "w1@h", now))
    store.ingest_many(task_events("b", "t.boom", "w1@h", now, ok=False))
    store.ingest({"type": "task-received", "uuid": "c", "name": "t.add", "hostname": "w1@h", "timestamp": now})
    store.ingest({"type": "task-received", "uuid": "d", "name": "t.add", "hostname": "w1@h", "timestamp": now})
    store.ingest({"type": "task-revoked", "uuid": "d", "hostname": "w1@h", "timestamp": now + 1})
    families = scrape_store(store, counts)
    for name, (kind, labels) in FLOWER.items():
        assert families[name].type == kind
        assert all(set(s.labels) - {"le"} == labels for s in families[name].samples), name
    events = "flower_events_total"
    assert value(families, events, worker="w1@h", type="task-succeeded", task="t.add") == 3
    assert value(families, events, worker="w1@h", type="task-received", task="t.add") == 5
    assert value(families, events, worker="w1@h", type="task-failed", task="t.boom") == 1
    assert value(families, events, worker="client@h", type="task-sent", task="t.add") == 3
    assert value(families, events, worker="w1@h", type="task-revoked", task="t.add") == 1
    assert value(families, "flower_task_runtime_seconds_count", worker="w1@h", task="t.add") == 3
    assert value(families, "flower_task_runtime_seconds_sum", worker="w1@h", task="t.add") == 3.0
    assert value(families, "flower_task_runtime_seconds_bucket", worker="w1@h", task="t.add", le="0.75") == 0
    assert value(families, "flower_task_runtime_seconds_bucket", worker="w1@h", task="t.add", le="1.0") == 3
    assert value(families, "flower_task_prefetch_time_seconds", worker="w1@h", task="t.add") == 0  # done
    assert value(families, "flower_worker_prefetched_tasks", worker="w1@h", task="t.add") == 1  # c waits
    assert value(families, "flower_worker_online", worker="w1@h") == 1
    assert value(families, "flower_worker_number_of_currently_executing_tasks", worker="w1@h") == 2
    store.ingest({"type": "worker-offline", "hostname": "w1@h", "timestamp": now + 2})
    untap()
    store.ingest_many(task_events("e", "t.add", "w1@h", now))
    families = scrape_store(store, counts)
    assert value(families, "flower_worker_online", worker="w1@h") == 0
    assert value(families, events, worker="w1@h", type="task-succeeded", task="t.add") == 3  # untapped


def test_prefetch_time_is_set_while_a_task_runs_and_skips_eta_tasks() -> None:
    store, counts = EventStore(), FlowerCounts()
    store.tap(counts.tap)
    now = time.time()
    store.ingest_many(task_events("a", "t.add", "w@h", now)[:3])  # started, not finished
    store.ingest_many(task_events("b", "t.later", "w@h", now, eta="2030-01-01T00:00:00")[:2])
    families = scrape_store(store, counts)
    assert value(families, "flower_task_prefetch_time_seconds", worker="w@h", task="t.add") == pytest.approx(0.3)
    assert value(families, "flower_worker_prefetched_tasks", worker="w@h", task="t.add") == 0
    assert value(families, "flower_worker_prefetched_tasks", worker="w@h", task="t.later") is None
    assert value(families, "flower_events_total", worker="w@h", type="task-received", task="t.later") == 1


def test_series_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each publishing process names its own hostname: past MAX_SERIES series, events are counted as dropped."""
    monkeypatch.setattr(flower, "MAX_SERIES", 3)
    store, counts = EventStore(), FlowerCounts()
    store.tap(counts.tap)
    for i in range(5):
        store.ingest({"type": "task-sent", "uuid": f"t{i}", "name": "t.add", "hostname": f"gen{i}@h", "timestamp": 1.0})
    store.ingest({"type": "task-sent", "uuid": "t9", "name": "t.add", "hostname": "gen0@h", "timestamp": 1.0})
    families = scrape_store(store, counts)
    assert len(families["flower_events"].samples) == 3
    assert value(families, "flower_events_total", worker="gen0@h", type="task-sent", task="t.add") == 2
    assert value(families, "stalk_metrics_dropped_events_total") == 2


def test_a_broker_call_that_hangs_costs_a_scrape_one_timeout_and_no_new_thread() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hangs() -> int:
        calls.append(1)
        release.wait(10)
        return len(calls)

    bounded = BoundedCall(hangs, timeout=0.2, name="test-bounded")
    started = time.monotonic()
    assert bounded() == (None, "no answer within 0.2 s")
    assert bounded() == (None, "no answer within 0.2 s")  # the same call still in flight: not a second one
    assert time.monotonic() - started < 1.0 and len(calls) == 1
    release.set()
    wait_until(lambda: bounded() == (1, None), timeout=5)
    assert BoundedCall(lambda: 1 / 0, 1.0, "test-bounded")() == (None, "ZeroDivisionError: division by zero")


def test_an_eager_stack_serves_its_metrics(tmp_path: Path) -> None:
    """No broker: the events are the eager feed's, no queue depth, the broker counts as up."""
    try:
        with module_stack(tmp_path / "data", broker={"mode": "eager"}, beat=False, app=EAGER_APP) as stack:
            for i in range(2):
                stack.app.tasks["m.add"].apply_async((i, i))
            stack.app.tasks["m.boom"].apply_async(("kaput",))
            stack.app.tasks["m.charge"].apply_async(("x",))
            wait_until(lambda: stack.events is not None and stack.events.counts_by_state().get("SUCCESS") == 3)
            families = families_of(stack)
    finally:
        forget_ledgers()
    events = "flower_events_total"
    assert value(families, events, worker=EAGER_HOST, type="task-succeeded", task="m.add") == 2
    assert value(families, events, worker=EAGER_HOST, type="task-failed", task="m.boom") == 1
    assert value(families, "stalk_broker_up", mode="eager") == 1
    assert not families["stalk_queue_depth"].samples
    assert value(families, "stalk_quota_used_units", quota="api") == 3
    assert not families["stalk_process_up"].samples  # eager runs no process


# -- a real stack: workers on the embedded broker, scraped over the socket -----------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        with module_stack(tmp_path_factory.mktemp("metrics") / "data", broker={"mode": "embedded"},
                          beat=False, app=APP) as running:
            yield running
    finally:
        forget_ledgers()


@pytest.fixture(scope="module")
def ran(stack: Stack) -> dict[str, str]:
    """3 adds and a charge succeed, a boom fails, BACKLOG adds wait in "backlog"; the worker's hostname."""
    ids = [stack.app.send_task("m.add", (i, i)).id for i in range(3)]
    ids.append(stack.app.send_task("m.charge", ("x",)).id)
    failed = stack.app.send_task("m.boom", ("kaput",)).id
    for _ in range(BACKLOG):
        stack.app.send_task("m.add", (0, 0), queue="backlog")
    store = stack.events
    assert store is not None
    for task_id in ids:
        assert store.wait_for(task_id, {"SUCCESS"}, timeout=30) is not None, store.get(task_id)
    assert store.wait_for(failed, {"FAILURE"}, timeout=30) is not None
    return {"worker": node_name(stack.worker_specs[0])}


def scrape(stack: Stack, **headers: str) -> httpx.Response:
    status = read_status(stack.paths.state)
    assert status is not None
    token = read_token(stack.paths.state)
    transport = httpx.HTTPTransport(uds=status["api"]["socket"])
    with httpx.Client(transport=transport, timeout=10) as http:
        auth = {"Authorization": f"Bearer {token}"} if token and headers.pop("auth", "yes") == "yes" else {}
        return http.get("http://stalk/api/v1/metrics", headers={**auth, **headers})


def families_of(stack: Stack) -> dict[str, Any]:
    response = scrape(stack)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)



@pytest.mark.procs
def test_the_flower_metrics_of_a_real_worker(stack: Stack, ran: dict[str, str]) -> None:
    worker = ran["worker"]
    wait_until(lambda: value(families_of(stack), "flower_events_total", worker=worker, type="task-succeeded",
                             task="m.add") == 3, timeout=10)
    # online once the worker's heartbeat (every 2 s) reached the store: task events alone do not say it
    wait_until(lambda: value(families_of(stack), "flower_worker_online", worker=worker) == 1, timeout=20)
    families = families_of(stack)
    for name, (kind, labels) in FLOWER.items():
        assert families[name].type == kind, name
        assert families[name].samples, name
        assert all(set(s.labels) - {"le"} == labels for s in families[name].samples), name
    events = "flower_events_total"
    for kind in ("task-received", "task-started", "task-succeeded"):
        assert value(families, events, worker=worker, type=kind, task="m.add") == 3, kind
    assert value(families, events, worker=worker, type="task-succeeded", task="m.charge") == 1
    assert value(families, events, worker=worker, type="task-failed", task="m.boom") == 1
    assert value(families, events, worker=worker, type="task-succeeded", task="m.boom") is None
    assert value(families, "flower_task_runtime_seconds_count", worker=worker, task="m.add") == 3
    assert value(families, "flower_task_runtime_seconds_bucket", worker=worker, task="m.add", le="+Inf") == 3
    assert 0 < value(families, "flower_task_runtime_seconds_sum", worker=worker, task="m.add") < 3  # type: ignore[operator]
    assert value(families, "flower_task_prefetch_time_seconds", worker=worker, task="m.add") == 0
    assert value(families, "flower_worker_prefetched_tasks", worker=worker, task="m.add") == 0
    assert value(families, "flower_worker_online", worker=worker) == 1
    assert value(families, "flower_worker_number_of_currently_executing_tasks", worker=worker) == 0


@pytest.mark.procs
def test_stalks_own_metrics(stack: Stack, ran: dict[str, str]) -> None:
    families = families_of(stack)
    assert value(families, "stalk_queue_depth", queue="backlog") == BACKLOG
    assert value(families, "stalk_queue_depth", queue="work") == 0
    assert value(families, "stalk_broker_up", mode="embedded") == 1
    info = [s for s in families["stalk_broker_info"].samples]
    assert len(info) == 1 and info[0].labels["mode"] == "embedded" and info[0].labels["durability"]
    assert value(families, "stalk_quota_limit_units", quota="api") == 100
    assert value(families, "stalk_quota_used_units", quota="api") == 3
    assert value(families, "stalk_quota_reserve_units", quota="api") == 10
    assert value(families, "stalk_quota_remaining_units", quota="api") == 87
    assert value(families, "stalk_quota_denied_calls_total", quota="api") == 0
    assert value(families, "stalk_process_up", process="worker:metrics", role="worker") == 1
    assert value(families, "stalk_process_restarts_total", process="worker:metrics", role="worker") == 0
    assert value(families, "stalk_tasks", state="SUCCESS") == 4
    assert value(families, "stalk_tasks", state="FAILURE") == 1
    assert value(families, "stalk_tasks_lost") == 0


@pytest.mark.procs
def test_the_metrics_need_the_token_and_speak_openmetrics(stack: Stack, ran: dict[str, str]) -> None:
    assert scrape(stack, auth="no").status_code == 401
    response = scrape(stack, Accept="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flower") as http:
        return await http.get(path)


@pytest.mark.procs
def test_another_app_serves_them_at_slash_metrics(stack: Stack, ran: dict[str, str]) -> None:
    """The one line an app whose state.stack is the Stack (Flower's port) mounts them with."""
    app = FastAPI()
    app.state.stack = stack
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    response = asyncio.run(get(app, "/metrics"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = parse(response.text)
    assert value(families, "flower_events_total", worker=ran["worker"], type="task-failed", task="m.boom") == 1
    app.state.stack = SimpleNamespace(api=None)
    response = asyncio.run(get(app, "/metrics"))
    assert response.status_code == 503 and "not ready" in response.json()["error"]


@pytest.mark.procs
def test_each_stack_has_its_own_registry(stack: Stack, ran: dict[str, str]) -> None:
    """Another StackMetrics in this process (another stack's) neither clashes with this one nor counts its
    events; a scrape is quick."""
    other = StackMetrics(stack)
    assert other.registry is not stack.api.metrics.registry
    text = other.exposition()[0].decode()
    assert value(parse(text), "flower_events_total", type="task-succeeded", task="m.add") is None
    started = time.monotonic()
    families_of(stack)
    assert time.monotonic() - started < 1.0
    other.stop()


@pytest.mark.procs
@pytest.mark.slow
def test_a_scrape_waits_for_a_paused_broker_only_briefly(running_stack: Any) -> None:
    """SIGSTOP on Stalk's redis-server: a scrape still answers within about the broker timeout, saying the
    broker is not up; once it runs again, so does the next scrape."""
    stack = running_stack(broker={"mode": "redis"}, beat=False, app=APP)
    assert value(families_of(stack), "stalk_broker_up", mode="redis") == 1
    pid = stack.process("broker").pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):
            started = time.monotonic()
            families = families_of(stack)
            assert time.monotonic() - started < BROKER_TIMEOUT + 1.5
            assert value(families, "stalk_broker_up", mode="redis") == 0
            assert not families["stalk_queue_depth"].samples
        assert sum(t.name == "stalk-metrics-broker" for t in threading.enumerate()) <= 1
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: value(families_of(stack), "stalk_broker_up", mode="redis") == 1, timeout=15)
