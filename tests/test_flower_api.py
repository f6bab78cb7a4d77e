"""The Flower-compatible API (embedded/service/flower) on a real stack (embedded broker, the demo's workers):
seed 000's n8n calls replayed as written, and Flower 2.x's documented request examples (its handlers'
docstrings: flower/api/tasks.py, workers.py, control.py), their answers checked against the documented
shapes. Plus what Stalk adds: its validation (a 400 and nothing sent), auth, browser protections, a taken
port, a non-loopback bind without auth."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stalk.embedded import Stack
from stalk.embedded.config import ConfigError, load_config
from stalk.embedded.service.flower.listener import FlowerListener

from .api_support import client_of
from .conftest import make_config, module_stack, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("flower-api")]
HOST = socket.gethostname()
DEFAULT = f"default@{HOST}"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
# Flower's documented answers (its handlers' docstrings), the keys each example shows.
TASK_INFO_KEYS = {"args", "client", "clock", "eta", "exception", "exchange", "expires", "failed", "kwargs", "name",
                  "received", "result", "retried", "retries", "revoked", "routing_key", "runtime", "sent", "started",
                  "state", "succeeded", "task-id", "timestamp", "traceback", "worker"}
TASK_LIST_KEYS = TASK_INFO_KEYS - {"task-id"} | {"uuid"}
WORKER_KEYS = {"active_queues", "conf", "registered", "stats", "timestamp"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("flower-api") / "data", broker={"mode": "embedded"}, beat=False,
                      flower={"port": 0}) as running:
        yield running


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[httpx.Client]:
    assert stack.api is not None and stack.api.flower is not None
    url = stack.api.flower.url()
    assert url is not None and stack.api.address()["flower"] == {"url": url, "auth": False, "problem": None}
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """A pool grown here stays the module stack's: module_stack checks that nothing outlives the stack."""
    yield


def json_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """Flower's error shape: the status and the reason as plain text."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    for word in words:
        assert word in response.text
    return response.text


def result_of(flower: httpx.Client, task_id: str) -> dict[str, Any]:
    return json_of(flower.get(f"/api/task/result/{task_id}", params={"timeout": 30}))


def in_store(stack: Stack, task_id: str, *states: str) -> Any:
    assert stack.events is not None
    wanted = states or ("SUCCESS",)
    return wait_until(lambda: (rec := stack.events.get(task_id)) is not None and rec.state in wanted and rec)


# -- seed 000: n8n through Flower's HTTP API ---------------------------------------------------------

def test_seed_000_curl_async_apply_then_result(flower: httpx.Client) -> None:
    """`curl -X POST .../api/task/async-apply/tasks.analyze_youtube -d '{"args": [...]}'` (curl's -d says
    form-encoded; Flower reads the body as JSON anyway), then `curl .../api/task/result/{task-id}`."""
    sent = json_of(flower.post("/api/task/async-apply/demo.analyze_youtube", headers=FORM,
                               content='{"args": ["https://youtube.com/watch?v=abc123"]}'))
    assert set(sent) == {"task-id", "state"} and sent["state"] in ("PENDING", "STARTED", "PROGRESS")
    done = wait_until(lambda: (r := json_of(flower.get(f"/api/task/result/{sent['task-id']}")))["state"]
                      in ("SUCCESS", "FAILURE", "REVOKED") and r, timeout=60)  # PROGRESS meanwhile
    assert done["task-id"] == sent["task-id"] and "result" in done
    assert done["state"] == "SUCCESS", done


def test_seed_000_n8n_http_node(flower: httpx.Client) -> None:
    """n8n's HTTP Request node: a JSON body, `Content-Type: application/json`; poll the result."""
    sent = json_of(flower.post("/api/task/async-apply/demo.add", json={"args": [2, 3]}))
    assert set(sent) == {"task-id", "state"}
    assert result_of(flower, sent["task-id"]) == {"task-id": sent["task-id"], "state": "SUCCESS", "result": 5}


def test_a_result_not_ready_is_its_state_only(flower: httpx.Client) -> None:
    sent = json_of(flower.post("/api/task/async-apply/demo.add", json={"args": [1, 1], "countdown": 30}))
    assert json_of(flower.get(f"/api/task/result/{sent['task-id']}")) == {"task-id": sent["task-id"],
                                                                        "state": "PENDING"}
    json_of(flower.post(f"/api/task/revoke/{sent['task-id']}"))


# -- Flower's documented examples ----------------------------------------------------------------------

def test_apply_waits_and_answers_the_result(flower: httpx.Client) -> None:
    answer = json_of(flower.post("/api/task/apply/demo.add", json={"args": [1, 2]}))
    assert answer == {"task-id": answer["task-id"], "result": 3, "state": "SUCCESS"}


def test_apply_of_a_failing_task_carries_its_traceback(flower: httpx.Client) -> None:
    answer = json_of(flower.post("/api/task/apply/demo.fail", json={}))
    assert answer["state"] == "FAILURE" and "Traceback" in answer["traceback"]
    assert set(answer) == {"task-id", "result", "traceback", "state"}


def test_send_task_with_options(flower: httpx.Client, stack: Stack) -> None:
    answer = json_of(flower.post("/api/task/send-task/demo.add",
                                 json={"args": [4], "kwargs": {"y": 5}, "queue": "default", "priority": 3}))
    assert set(answer) == {"task-id", "state"}
    assert result_of(flower, answer["task-id"])["result"] == 9
    assert in_store(stack, answer["task-id"]).queue == "default"


def test_countdown_and_eta_in_flowers_format(flower: httpx.Client, stack: Stack) -> None:
    due = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(minutes=10)  # Flower's: naive UTC
    later = json_of(flower.post("/api/task/async-apply/demo.add", json={"args": [1, 2], "countdown": 60}))
    eta = json_of(flower.post("/api/task/async-apply/demo.add",
                              json={"args": [1, 2], "eta": f"{due:%Y-%m-%d %H:%M:%S.%f}"}))
    assert stack.events is not None
    for sent in (later, eta):
        rec = wait_until(lambda s=sent: stack.events.get(s["task-id"]))
        assert wait_until(lambda r=rec: r.eta)
    assert stack.events.get(eta["task-id"]).eta.startswith(due.isoformat())
    for sent in (later, eta):
        json_of(flower.post(f"/api/task/revoke/{sent['task-id']}"))


def test_task_info(flower: httpx.Client, stack: Stack) -> None:
    sent = json_of(flower.post("/api/task/async-apply/demo.add", json={"args": [2, 2]}))
    in_store(stack, sent["task-id"])
    info = json_of(flower.get(f"/api/task/info/{sent['task-id']}"))
    assert set(info) >= TASK_INFO_KEYS
    assert info["task-id"] == info["uuid"] == sent["task-id"]
    assert (info["name"], info["state"], info["args"], info["kwargs"], info["result"]) == \
        ("demo.add", "SUCCESS", "[2, 2]", "{}", "4")
    assert info["worker"] == DEFAULT and info["succeeded"] >= info["started"] >= info["received"]
    assert isinstance(info["runtime"], float) and info["failed"] is None
    refused(flower.get("/api/task/info/no-such-task"), 404, "Unknown task 'no-such-task'")


def test_tasks_list_with_filters(flower: httpx.Client, stack: Stack) -> None:
    ids = [json_of(flower.post("/api/task/async-apply/demo.add", json={"args": [i, 100]}))["task-id"]
           for i in range(3)]
    failed = json_of(flower.post("/api/task/async-apply/demo.fail", json={}))["task-id"]
    for task_id in ids:
        in_store(stack, task_id)
    in_store(stack, failed, "FAILURE")
    everything = json_of(flower.get("/api/tasks"))
    assert set(ids) | {failed} <= set(everything)
    for task_id, task in everything.items():
        assert set(task) >= TASK_LIST_KEYS and task["uuid"] == task_id
    newest = list(json_of(flower.get("/api/tasks", params={"limit": 2})))
    assert len(newest) == 2 and newest == list(everything)[:2]  # newest first, as Flower
    assert list(json_of(flower.get("/api/tasks", params={"limit": 2, "offset": 1}))) == list(everything)[1:3]
    adds = json_of(flower.get("/api/tasks", params={"taskname": "demo.add", "state": "SUCCESS"}))
    assert set(ids) <= set(adds) and {t["name"] for t in adds.values()} == {"demo.add"}
    assert list(json_of(flower.get("/api/tasks", params={"state": "FAILURE", "limit": 1}))) == [failed]
    assert json_of(flower.get("/api/tasks", params={"taskname": "demo.ad"})) == {}  # exact, as Flower
    on_default = json_of(flower.get("/api/tasks", params={"workername": DEFAULT}))
    assert set(ids) <= set(on_default) and {t["worker"] for t in on_default.values()} == {DEFAULT}
    by_name = [t["name"] for t in json_of(flower.get("/api/tasks", params={"sort_by": "name"})).values()]
    assert by_name == sorted(by_name)
    by_start = [t["started"] or 0 for t in json_of(flower.get("/api/tasks", params={"sort_by": "-started"})).values()]
    assert by_start == sorted(by_start, reverse=True)
    found = json_of(flower.get("/api/tasks", params={"search": "[2, 100]"}))
    assert list(found) == [ids[2]]
    today = time.strftime("%Y-%m-%d 00:00")
    assert set(ids) <= set(json_of(flower.get("/api/tasks", params={"received_start": today})))
    assert json_of(flower.get("/api/tasks", params={"received_end": "2000-01-01 00:00"})) == {}
    assert set(ids) <= set(json_of(flower.get("/api/tasks", params={"workername": "All", "state": "All"})))
    refused(flower.get("/api/tasks", params={"sort_by": "color"}), 400, "sort_by")
    refused(flower.get("/api/tasks", params={"received_start": "yesterday"}), 400, "received_start")
    refused(flower.get("/api/tasks", params={"limit": "ten"}), 400, "of type 'int'")


def test_task_types(flower: httpx.Client) -> None:
    json_of(flower.post("/api/task/apply/demo.add", json={"args": [0, 0]}))
    types = json_of(flower.get("/api/task/types"))
    assert set(types) == {"task-types"} and "demo.add" in types["task-types"]
    assert types["task-types"] == sorted(types["task-types"])


def test_queues_length(flower: httpx.Client) -> None:
    queues = json_of(flower.get("/api/queues/length"))
    assert set(queues) == {"active_queues"}
    assert {"name": "default", "messages": 0} in queues["active_queues"]
    for queue in queues["active_queues"]:
        assert set(queue) == {"name", "messages"} and isinstance(queue["messages"], int)


def test_workers(flower: httpx.Client) -> None:
    workers = json_of(flower.get("/api/workers", params={"refresh": "true"}))
    assert DEFAULT in workers and set(workers[DEFAULT]) >= WORKER_KEYS
    assert "demo.add" in workers[DEFAULT]["registered"]
    assert workers[DEFAULT]["stats"]["pool"]["max-concurrency"] >= 1
    assert "default" in [q["name"] for q in workers[DEFAULT]["active_queues"]]
    one = json_of(flower.get("/api/workers", params={"workername": DEFAULT}))
    assert list(one) == [DEFAULT]
    status = json_of(flower.get("/api/workers", params={"status": "true"}))
    assert status[DEFAULT] is True and all(isinstance(v, bool) for v in status.values())
    refused(flower.get("/api/workers", params={"workername": "nobody@nowhere"}), 404, "Unknown worker")


def test_revoke_with_terminate_and_signal(flower: httpx.Client, stack: Stack) -> None:
    sent = json_of(flower.post("/api/task/async-apply/demo.slow_add", json={"args": [1, 2], "kwargs": {"seconds": 60}}))
    in_store(stack, sent["task-id"], "STARTED", "PROGRESS")
    answer = json_of(flower.post(f"/api/task/revoke/{sent['task-id']}?terminate=true&signal=SIGKILL"))
    assert answer == {"message": f"Revoked '{sent['task-id']}'"}
    in_store(stack, sent["task-id"], "REVOKED")
    refused(flower.post(f"/api/task/revoke/{sent['task-id']}?signal=SIGNOPE"), 400, "signal")


def test_abort(flower: httpx.Client) -> None:
    sent = json_of(flower.post("/api/task/apply/demo.add", json={"args": [1, 2]}))
    assert json_of(flower.post(f"/api/task/abort/{sent['task-id']}")) == {"message": f"Aborted '{sent['task-id']}'"}


def test_rate_limit_as_flowers_example(flower: httpx.Client) -> None:
    """Flower's example sends its arguments as a form body: ratelimit=200&workername=celery%40worker1."""
    answer = json_of(flower.post("/api/task/rate-limit/demo.add", headers=FORM,
                                 content=f"ratelimit=200&workername={DEFAULT.replace('@', '%40')}"))
    assert answer == {"message": "new rate limit set successfully"}
    assert json_of(flower.post("/api/task/rate-limit/demo.add", params={"ratelimit": "0"}))["message"]
    refused(flower.post("/api/task/rate-limit/demo.nope", params={"ratelimit": "1/s"}), 404, "Unknown task")
    refused(flower.post("/api/task/rate-limit/demo.add", params={"ratelimit": "fast"}), 400)
    refused(flower.post("/api/task/rate-limit/demo.add"), 400, "Missing argument ratelimit")


def test_timeout(flower: httpx.Client) -> None:
    answer = json_of(flower.post("/api/task/timeout/demo.add", data={"soft": 30, "hard": 100, "workername": DEFAULT}))
    assert answer == {"message": "time limits set successfully"}
    json_of(flower.post("/api/task/timeout/demo.add", params={"soft": 0, "hard": 0}))
    refused(flower.post("/api/task/timeout/demo.add", params={"soft": 100, "hard": 30}), 400)


def test_pool_grow_and_shrink(flower: httpx.Client) -> None:
    grown = json_of(flower.post(f"/api/worker/pool/grow/{DEFAULT}?n=1"))
    assert grown == {"message": f"Growing '{DEFAULT}' worker's pool by 1"}
    shrunk = json_of(flower.post(f"/api/worker/pool/shrink/{DEFAULT}"))
    assert shrunk == {"message": f"Shrinking '{DEFAULT}' worker's pool by 1"}
    refused(flower.post(f"/api/worker/pool/grow/{DEFAULT}?n=0"), 400)
    refused(flower.post("/api/worker/pool/grow/nobody@nowhere"), 404, "Unknown worker 'nobody@nowhere'")


def test_pool_restart_and_autoscale_not_enabled_are_403(flower: httpx.Client) -> None:
    """As Flower: a worker without pool restarts / autoscale answers an error, shown as a 403."""
    refused(flower.post(f"/api/worker/pool/restart/{DEFAULT}"), 403, "not enabled")
    refused(flower.post(f"/api/worker/pool/autoscale/{DEFAULT}?min=1&max=2"), 403, "not enabled")
    refused(flower.post(f"/api/worker/pool/autoscale/{DEFAULT}?min=3&max=2"), 400, "max")


def test_consumers(flower: httpx.Client) -> None:
    added = json_of(flower.post(f"/api/worker/queue/add-consumer/{DEFAULT}?queue=sample-queue"))
    assert added == {"message": "add consumer sample-queue"}
    cancelled = json_of(flower.post(f"/api/worker/queue/cancel-consumer/{DEFAULT}?queue=sample-queue"))
    assert cancelled == {"message": "no longer consuming from sample-queue"}
    refused(flower.post(f"/api/worker/queue/add-consumer/{DEFAULT}"), 400, "Missing argument queue")


def test_waiting_flower_calls_never_starve_the_stack_api(flower: httpx.Client, stack: Stack) -> None:
    """70 callers each waiting on a result that never comes (more than the thread pool the stack API's own
    routes use): the panel's and CLI's API still answers at once, and so does Flower's."""
    def wait_for_nothing(i: int) -> int:
        with httpx.Client(base_url=str(flower.base_url), timeout=30) as own:
            answer = own.get(f"/api/task/result/never-{i}", params={"timeout": 2})
            return answer.status_code if answer.status_code == 200 else answer.text

    with ThreadPoolExecutor(70) as pool:
        waits = [pool.submit(wait_for_nothing, i) for i in range(70)]
        time.sleep(0.5)
        with client_of(stack) as api:
            started = time.monotonic()
            assert api.get("/stack")["ready"] is True
            assert time.monotonic() - started < 1.0
        started = time.monotonic()
        assert flower.get("/api/task/types").status_code == 200
        assert time.monotonic() - started < 1.0
        assert [w.result() for w in waits] == [200] * 70


def test_keep_alive_answers_are_not_held_by_nagle(stack: Stack) -> None:
    """Answers on a kept-alive connection leave at once (TCP_NODELAY): without it each waited ~40 ms for the
    client's delayed ACK."""
    assert stack.api is not None and stack.api.flower is not None and stack.api.flower.port is not None
    with socket.create_connection(("127.0.0.1", stack.api.flower.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        took = []
        for _ in range(20):
            started = time.monotonic()
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b" 200 " in reader.readline()
            while reader.readline() != b"\r\n":
                pass
            assert reader.read(2) == b"OK"
            took.append(time.monotonic() - started)
    assert sorted(took)[10] < 0.02, took


def test_healthcheck(flower: httpx.Client) -> None:
    answer = flower.get("/healthcheck")
    assert (answer.status_code, answer.text) == (200, "OK")


def test_metrics_on_flowers_port_as_prometheus_scrapes_them(flower: httpx.Client) -> None:
    """Flower's Grafana dashboards scrape <flower>/metrics: the same names on Stalk's Flower port."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = flower.get("/metrics")
    assert answer.status_code == 200, answer.text
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"flower_events", "flower_worker_online", "stalk_queue_depth"} <= names


# -- Stalk's validation: a 400 (404 for an unknown task) and nothing sent -----------------------------------

@pytest.mark.parametrize(("body", "words"), [
    ('{"args": [1, 2], "priority": 99, "task_id": "flower-bad-1"}', ["priority"]),
    ('{"args": [1], "task_id": "flower-bad-2"}', ["argument"]),
    ('{"args": [1, 2], "countdown": "soon", "task_id": "flower-bad-3"}', ["countdown"]),
    ('{"args": [1, 2], "eta": "tomorrow", "task_id": "flower-bad-4"}', ["eta"]),
    ('{"args": [1, 2], "link": "x", "task_id": "flower-bad-5"}', ["link"]),
    ('{"args": "1, 2", "task_id": "flower-bad-6"}', ["args must be an array"]),
    ('{"args": [1, 2], "queue": "nobody-consumes", "task_id": "flower-bad-7"}', ["queue"]),
    ('[1, 2]', ["invalid options"]),
    ('{"args": [1, 2', ["invalid JSON"]),
])
def test_a_bad_request_is_a_400_and_nothing_is_sent(flower: httpx.Client, stack: Stack, body: str,
                                                   words: list[str]) -> None:
    refused(flower.post("/api/task/async-apply/demo.add", headers=FORM, content=body), 400, *words)
    time.sleep(0.3)
    assert stack.events is not None and [k for k in ("flower-bad-1", "flower-bad-2", "flower-bad-3",
                                         "flower-bad-4", "flower-bad-5", "flower-bad-6", "flower-bad-7")
                                         if stack.events.get(k)] == []


def test_an_unknown_task_is_a_404(flower: httpx.Client) -> None:
    refused(flower.post("/api/task/async-apply/tasks.nope", json={"args": []}), 404, "Unknown task 'tasks.nope'")
    refused(flower.post("/api/task/apply/tasks.nope", json={}), 404, "Unknown task")
    refused(flower.post("/api/task/send-task/tasks.nope", json={}), 404, "Unknown task")


# -- browser protections -----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Host": "evil.example:5555"}])
def test_a_web_page_is_refused(flower: httpx.Client, headers: dict[str, str]) -> None:
    refused(flower.post("/api/task/async-apply/demo.add", headers={**FORM, **headers}, content='{"args": [1, 2]}'),
            403, "refused" if "Host" not in headers else "Host")


# -- auth, a taken port, a non-loopback bind (eager stacks: no processes) ---------------------------------

EAGER: dict[str, Any] = {"broker": {"mode": "eager"}, "beat": False}


def test_basic_auth_and_tokens(tmp_path_factory: pytest.TempPathFactory) -> None:
    flags = {**EAGER, "flower": {"port": 0, "basic_auth": ["ann:s3cret", "bob:pw:with:colons"], "tokens": ["tok"]}}
    with module_stack(tmp_path_factory.mktemp("flower-auth") / "data", **flags) as stack:
        assert stack.api is not None and stack.api.flower is not None
        with httpx.Client(base_url=stack.api.flower.url() or "", timeout=30) as flower:
            answer = flower.get("/api/task/types")
            refused(answer, 401, "Unauthorized")
            assert answer.headers["www-authenticate"] == 'Basic realm="flower"'
            for bad in ("Basic " + base64.b64encode(b"ann:nope").decode(), "Basic !!!", "Bearer nope", "tok"):
                refused(flower.get("/api/task/types", headers={"Authorization": bad}), 401)
            json_of(flower.get("/api/task/types", auth=("ann", "s3cret")))
            json_of(flower.get("/api/task/types", auth=("bob", "pw:with:colons")))
            json_of(flower.get("/api/task/types", headers={"Authorization": "Bearer tok"}))
            assert flower.get("/healthcheck").text == "OK"  # open, as Flower's
            refused(flower.get("/api/task/types", auth=("ann", "s3cret"), headers={"Origin": "https://x"}), 403)


def test_a_taken_port_leaves_the_stack_up_and_says_why(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with module_stack(tmp_path_factory.mktemp("flower-taken") / "data", **EAGER, flower={"port": port}) as stack:
            assert stack.api is not None
            flower = stack.api.address()["flower"]
            assert flower["url"] is None and f"port {port}" in flower["problem"]
            assert "not served" in flower["problem"]
            assert any(f"port {port}" in line.text for line in stack.logs("stalk"))


def test_a_non_loopback_bind_needs_auth(tmp_path: Any) -> None:
    config = make_config(tmp_path / "data", **EAGER, flower={"host": "0.0.0.0", "port": 0})
    with pytest.raises(ConfigError, match="flower.basic_auth or flower.tokens"):
        FlowerListener(Stack(config), config.flower)
    with pytest.raises(ConfigError, match="non-loopback address only with one of them"):
        Stack(config).start()  # refused at start, before anything listens
    assert not (tmp_path / "data" / "state" / "api.sock").exists()


def test_the_environment_sets_basic_auth_and_port() -> None:
    config = load_config({}, environ={"STALK_CONFIG": "", "STALK_FLOWER_BASIC_AUTH": "a:1, b:2",
                                      "STALK_FLOWER_PORT": "5566"})
    assert (config.flower.basic_auth, config.flower.port) == (("a:1", "b:2"), 5566)
    with pytest.raises(ConfigError, match="user:password"):
        load_config({"flower": {"basic_auth": ["nocolon"]}}, environ={"STALK_CONFIG": ""})


def test_the_cli_flag_sets_basic_auth_and_passes_it_in_the_environment(tmp_path: Any) -> None:
    """`stalk up --basic-auth a:1,b:2` (Flower's flag and format); the panel's own stack process gets it in
    its environment, not on its command line."""
    from stalk.panel.cli.base import build_config, up_command

    params = {"data_dir": tmp_path / "data", "basic_auth": "a:1,b:2"}
    config = build_config(params)
    assert config.flower.basic_auth == ("a:1", "b:2")
    args, env = up_command(config, params)
    assert env["STALK_FLOWER_BASIC_AUTH"] == "a:1,b:2" and "a:1,b:2" not in args
