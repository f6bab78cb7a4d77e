"""The Flower-compatible API's fast send path (embedded/service/flower/fast.py) on a real stack (Stalk's
redis-server, a worker on another queue, so what is sent stays in its queue): every 200 comes after its
own message is on the broker, concurrent sends each get their own task; unknown tasks, bad bodies,
refused credentials and oversized bodies send nothing; what is not a send still goes to FastAPI's
routes. Plus the Publisher alone: a batch's failures stay each request's own, stop() ends its threads."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stalk.embedded import Stack
from stalk.embedded.service.flower.fast import Publisher
from stalk.embedded.service.flower.listener import MAX_CONNECTIONS

from .conftest import broker_redis, module_stack

TOKEN = "fast-path-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUEUE = "ctl"  # tests/apps/control_app.py's default queue; the stack's one worker consumes "idle" only


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workers = [{"name": "idle", "queues": ["idle"], "concurrency": 1, "pool": "solo"}]
    with module_stack(tmp_path_factory.mktemp("flower-fast") / "data", broker={"mode": "redis"}, beat=False,
                      app="tests.apps.control_app:app", workers=workers,
                      flower={"port": 0, "tokens": [TOKEN]}) as running:
        yield running


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[httpx.Client]:
    assert stack.api is not None and stack.api.flower is not None
    with httpx.Client(base_url=stack.api.flower.url() or "", headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def broker(stack: Stack) -> Iterator[redis.Redis]:
    assert stack.broker is not None and stack.broker.broker_url is not None
    client = broker_redis(stack.broker.broker_url)
    yield client
    client.close()


def queued_ids(broker: redis.Redis) -> set[str]:
    """The task ids of the messages waiting in QUEUE (kombu's redis list of JSON envelopes)."""
    return {json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)}


@pytest.mark.procs
def test_every_answer_comes_after_its_message_is_on_the_broker(flower: httpx.Client, broker: redis.Redis) -> None:
    paths = ["/api/task/async-apply/ctl.add", "/api/task/send-task/ctl.add"] * 20

    def send(path: str) -> tuple[str, bool]:
        answer = flower.post(path, json={"args": [1, 2]})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json; charset=UTF-8"
        body = answer.json()
        assert set(body) == {"task-id", "state"} and body["state"] == "PENDING"
        return body["task-id"], body["task-id"] in queued_ids(broker)  # read as soon as the 200 is in

    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(send, paths))
    assert all(on_broker for _, on_broker in sent)
    assert len({task_id for task_id, _ in sent}) == len(paths)


@pytest.mark.procs
@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("/api/task/async-apply/ctl.nope", b'{"args": [1, 2]}', 404, ["Unknown task 'ctl.nope'"]),
    ("/api/task/send-task/ctl.nope", b"{}", 404, ["Unknown task"]),
    ("/api/task/apply/ctl.nope", b"{}", 404, ["Unknown task"]),
    ("/api/task/async-apply/ctl.add", b'{"args": [1]}', 400, ["argument"]),
    ("/api/task/async-apply/ctl.add", b'{"args": [1, 2], "kwargs": {"z": 3}}', 400, ["z"]),
    ("/api/task/async-apply/ctl.add", b'{"args": [1, 2', 400, ["invalid JSON"]),
    ("/api/task/async-apply/ctl.add", b'{"args": [1, 2], "link": "x"}', 400, ["link"]),
    ("/api/task/apply/ctl.add", b"[1, 2]", 400, ["invalid options"]),
    ("/api/task/async-apply/", b"{}", 400, []),
])
def test_a_refused_send_sends_nothing(flower: httpx.Client, broker: redis.Redis, path: str, body: bytes,
                                      status: int, words: list[str]) -> None:
    before = broker.llen(QUEUE)
    answer = flower.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert all(word in answer.text for word in words), answer.text
    assert broker.llen(QUEUE) == before


@pytest.mark.procs
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!!"}])
def test_refused_credentials_send_nothing(stack: Stack, broker: redis.Redis, headers: dict[str, str]) -> None:
    assert stack.api is not None and stack.api.flower is not None
    before = broker.llen(QUEUE)
    answer = httpx.post(f"{stack.api.flower.url()}/api/task/async-apply/ctl.add", json={"args": [1, 2]},
                        headers=headers, timeout=30)
    assert answer.status_code == 401 and "Unauthorized" in answer.text
    assert broker.llen(QUEUE) == before


@pytest.mark.procs
@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Host": "evil.example"}])
def test_a_web_page_sends_nothing(flower: httpx.Client, broker: redis.Redis, headers: dict[str, str]) -> None:
    before = broker.llen(QUEUE)
    answer = flower.post("/api/task/async-apply/ctl.add", json={"args": [1, 2]}, headers=headers)
    assert answer.status_code == 403
    assert broker.llen(QUEUE) == before


@pytest.mark.procs
def test_an_oversized_body_sends_nothing(flower: httpx.Client, broker: redis.Redis) -> None:
    before = broker.llen(QUEUE)
    big = json.dumps({"args": [1, 2], "kwargs": {}, "task_id": "x" * (1024 * 1024)})
    answer = flower.post("/api/task/async-apply/ctl.add", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert broker.llen(QUEUE) == before


@pytest.mark.procs
def test_what_is_not_a_send_still_goes_to_the_routes(flower: httpx.Client) -> None:
    assert flower.get("/api/task/async-apply/ctl.add").status_code == 405  # a send's path, not its method
    assert flower.post("/api/task/async-apply").status_code == 307  # no name part: FastAPI's slash redirect
    assert flower.get("/api/task/types").status_code == 200


def flower_address(stack: Stack) -> tuple[str, int]:
    assert stack.api is not None and stack.api.flower is not None and stack.api.flower.port is not None
    return "127.0.0.1", stack.api.flower.port


@pytest.mark.procs
def test_the_port_parses_with_httptools_and_refuses_connections_beyond_its_limit(stack: Stack,
                                                                                 flower: httpx.Client) -> None:
    assert stack.api is not None and stack.api.flower is not None and stack.api.flower.server is not None
    assert issubclass(stack.api.flower.server.config.http, HttpToolsProtocol)  # type: ignore[arg-type]
    held = [socket.create_connection(flower_address(stack), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        with socket.create_connection(flower_address(stack), timeout=10) as extra:
            answer = extra.recv(4096)  # answered at once, before it sends anything
        assert answer.startswith(b"HTTP/1.1 503 ") and b"connections open already" in answer
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while flower.get("/healthcheck").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flower.get("/healthcheck").text == "OK"


@pytest.mark.procs
def test_a_silent_connection_is_closed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.api is not None and stack.api.flower is not None and stack.api.flower.server is not None
    monkeypatch.setattr(stack.api.flower.server.config, "timeout_keep_alive", 0.3)  # read at each connection
    with socket.create_connection(flower_address(stack), timeout=10) as sock:
        assert sock.recv(1) == b""  # the server closed it (the socket's own timeout is 10 s)


def test_the_publisher_answers_each_job_with_its_own_outcome() -> None:
    publisher = Publisher(threads=2)
    release = threading.Event()

    def job(i: int) -> Any:
        release.wait(5)  # the first jobs hold the threads: the rest queue up and go as batches
        if i % 3 == 0:
            raise ValueError(f"job {i}")
        return i * 10

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, release.set)
        return await asyncio.gather(*(publisher.run(lambda i=i: job(i)) for i in range(30)), return_exceptions=True)

    try:
        outcomes = asyncio.run(main())
        threads = list(publisher.threads)
    finally:
        publisher.stop()
    for i, outcome in enumerate(outcomes):
        if i % 3 == 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"job {i}"
        else:
            assert outcome == i * 10
    assert len(threads) == 2 and publisher.threads == [] and not any(t.is_alive() for t in threads)


def test_a_cancelled_request_does_not_stop_the_publisher() -> None:
    publisher = Publisher(threads=1)

    async def main() -> Any:
        slow = asyncio.ensure_future(publisher.run(lambda: time.sleep(0.3)))
        await asyncio.sleep(0.05)
        slow.cancel()  # the client went away: its job still runs, its answer is dropped
        return await publisher.run(lambda: "next")

    try:
        assert asyncio.run(main()) == "next"
    finally:
        publisher.stop()
