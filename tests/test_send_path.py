"""The stack's send path on a real stack (Stalk's redis-server on its Unix socket, a worker on the task's
queue): sends publish through Stalk's transport (embedded.patches.kombu_redis_channel, its pools too), and
every way Stalk waits for a result gets it, also when the task finished before the wait began: the stack
API's wait, `stalk submit --wait`, Flower's `apply` and `GET /api/task/result`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from stalk.embedded import Stack
from stalk.embedded.patches import kombu_redis_channel
from stalk.embedded.service.routes.submit import outcome

from .conftest import ROOT, broker_redis, clean_env, module_stack, stalk_cmd, wait_until

pytestmark = pytest.mark.procs
TOKEN = "send-path-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workers = [{"name": "ctl", "queues": ["ctl"], "concurrency": 1, "pool": "solo"}]
    with module_stack(tmp_path_factory.mktemp("send-path") / "data", broker={"mode": "redis"}, beat=False,
                      app="tests.apps.control_app:app", workers=workers,
                      flower={"port": 0, "tokens": [TOKEN]}) as running:
        yield running


@pytest.fixture(scope="module")
def backend(stack: Stack) -> Iterator[redis.Redis]:
    assert stack.broker is not None and stack.broker.backend_url is not None
    client = broker_redis(stack.broker.backend_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[httpx.Client]:
    assert stack.api is not None and stack.api.flower is not None
    with httpx.Client(base_url=stack.api.flower.url() or "", headers=AUTH, timeout=60) as client:
        yield client


def key(task_id: str) -> str:
    return f"celery-task-meta-{task_id}"  # the Redis backend's result key, and the channel it publishes on


def finished(backend: redis.Redis, task_id: str) -> None:
    wait_until(lambda: backend.get(key(task_id)) is not None, timeout=30)


def json_of(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def test_sends_go_through_stalks_transport(stack: Stack, flower: httpx.Client, backend: redis.Redis) -> None:
    assert stack.broker is not None and stack.broker.broker_url.startswith("redis+socket://")
    with stack.app.producer_or_acquire() as producer:  # Celery's producer pool: every send_task's connection
        assert producer.connection.get_transport_cls() is kombu_redis_channel.Transport
    assert stack.control is not None
    own = stack.control.submit({"name": "ctl.add", "args": [1, 2]})
    sent = json_of(flower.post("/api/task/async-apply/ctl.add", json={"args": [3, 4]}))["task-id"]
    for task_id in (own.id, sent):
        finished(backend, task_id)
    assert own.get(timeout=10) == 3


def test_a_result_stored_before_the_wait_reaches_every_waiter(stack: Stack, flower: httpx.Client,
                                                              backend: redis.Redis) -> None:
    assert stack.control is not None
    result = stack.control.submit({"name": "ctl.add", "args": [20, 22]})
    finished(backend, result.id)
    assert outcome(result, 10).model_dump(exclude_none=True) == {"state": "SUCCESS", "result": 42}  # API's wait
    sent = json_of(flower.post("/api/task/async-apply/ctl.add", json={"args": [2, 3]}))["task-id"]
    finished(backend, sent)
    assert json_of(flower.get(f"/api/task/result/{sent}", params={"timeout": 5})) == {
        "task-id": sent, "state": "SUCCESS", "result": 5}
    assert json_of(flower.post("/api/task/apply/ctl.add", json={"args": [5, 6]}))["result"] == 11


def test_stalk_submit_wait_gets_its_result(stack: Stack) -> None:
    done = subprocess.run(stalk_cmd("submit", "ctl.add", "--args", "[2, 40]", "--wait", "--data-dir",
                                    str(stack.paths.data_dir)), cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "result: 42" in done.stdout
