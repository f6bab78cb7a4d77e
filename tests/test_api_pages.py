"""The task pages' fast paths: pages encoded by orjson (the json module for what orjson cannot encode), and
RemoteEvents dropping an answer its caller no longer wants before building records from it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from stalk.embedded import Stack
from stalk.embedded.events import Unwanted
from stalk.embedded.service import ApiError, StackClient
from stalk.embedded.status_file import read_status

from .api_support import client_of, remote_of
from .conftest import module_stack, wait_until

BIG = 2**70  # past orjson's 64-bit integers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("api-pages") / "data", broker={"mode": "eager"}, beat=False) as running:
        now = time.time()
        common = {"hostname": "alpha@host", "timestamp": now, "local_received": now}
        running.events.ingest_many([
            {**common, "type": "task-sent", "uuid": "plain", "name": "demo.add", "args": "(1, 'é')", "kwargs": "{}",
             "queue": "default", "retries": 0},
            {**common, "type": "task-sent", "uuid": "huge", "name": "demo.count", "args": "()", "kwargs": "{}",
             "queue": "default", "retries": 0},
            {**common, "type": "task-started", "uuid": "huge"},
            {**common, "type": "task-progress", "uuid": "huge", "state": "PROGRESS",
             "meta": {"done": BIG, "7": "seven"}}])
        wait_until(lambda: read_status(running.paths.state), 10, 0.02)  # the API's address, for clients
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[StackClient]:
    with client_of(stack) as api:
        yield api


def test_a_page_holds_the_stores_values(stack: Stack, client: StackClient) -> None:
    page = client.get("/tasks", shape="rows", name="demo.add")
    assert page["total"] == 1 and page["rows"][0][page["fields"].index("args")] == "(1, 'é')"
    record = stack.events.get("plain")
    assert record is not None
    assert page["rows"][0][:len(page["fields"]) - 1] == list(record.as_dict().values())


def test_what_orjson_cannot_encode_is_answered_by_the_json_module(client: StackClient) -> None:
    page = client.get("/tasks", shape="rows", name="demo.count")
    assert page["rows"][0][page["fields"].index("progress")] == {"done": BIG, "7": "seven"}
    assert client.get("/tasks", name="demo.count")["tasks"][0]["progress"]["done"] == BIG
    assert client.get("/tasks/huge")["task"]["progress"]["done"] == BIG


def test_an_answer_no_longer_wanted_is_dropped_before_its_records_are_built(stack: Stack) -> None:
    with remote_of(stack) as remote:
        asked = []

        def wanted() -> bool:
            asked.append(True)
            return False

        with pytest.raises(Unwanted):
            remote.events.query(wanted=wanted)
        assert asked  # asked once the answer was in
        assert {r.task_id for r in remote.events.query(wanted=lambda: True)} == {"plain", "huge"}


def test_a_page_can_leave_fields_out(stack: Stack, client: StackClient) -> None:
    page = client.get("/tasks", shape="rows", name="demo.add", omit="traceback,args")
    row = dict(zip(page["fields"], page["rows"][0], strict=True))
    assert row["args"] is None and row["traceback"] is None and row["name"] == "demo.add"
    listed = client.get("/tasks", name="demo.add", omit="args")["tasks"][0]
    assert listed["args"] is None and listed["kwargs"] == "{}"
    with pytest.raises(ApiError) as refused:
        client.get("/tasks", omit="traceback,nope")
    assert refused.value.status == 400 and "nope" in refused.value.message
