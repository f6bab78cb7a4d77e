"""1,000 malformed requests to the Flower-compatible API of a real stack (embedded broker, the demo's workers):
bad JSON, huge bodies, wrong types, unknown tasks, path tricks (../, %2e%2e, NULs), bad arguments, wrong
methods. Every one gets a 4xx, none a 5xx, nothing is sent, and the server still answers afterwards."""

from __future__ import annotations

import json
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stalk.embedded import Stack

from .conftest import module_stack

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("flower-fuzz")]
COUNT = 1000
SENDS = ("/api/task/async-apply/", "/api/task/apply/", "/api/task/send-task/")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("flower-fuzz") / "data", broker={"mode": "embedded"}, beat=False,
                      flower={"port": 0}) as running:
        yield running


def bad_body(rng: random.Random) -> bytes:
    """A body no send may accept: not JSON, not an object, wrong types, bad options, unknown options."""
    choices: list[Any] = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))),
        lambda: b'{"args": [1, 2' + b"]" * rng.randint(0, 1),
        lambda: b"[" * rng.randint(1000, 100_000),
        lambda: json.dumps(rng.choice([[1, 2], "text", 3, None, True])).encode(),
        lambda: json.dumps({"args": rng.choice(["1, 2", 7, {"x": 1}, None, True])}).encode(),
        lambda: json.dumps({"args": [1, 2], "kwargs": rng.choice([[1], "y=2", 3])}).encode(),
        lambda: json.dumps({"args": [1, 2], rng.choice(["link", "exchange", "headers", "x" * 50]): 1}).encode(),
        lambda: json.dumps({"args": [1, 2], "priority": rng.choice([-1, 10, 99, "high", [1], 1.5])}).encode(),
        lambda: json.dumps({"args": [1, 2], "countdown": rng.choice(["soon", [], -5, 1e308, "nan"])}).encode(),
        lambda: json.dumps({"args": [1, 2], "eta": rng.choice(["tomorrow", 12, "2030-13-45 99:00:00.0", []])}).encode(),
        lambda: json.dumps({"args": [1, 2], "expires": rng.choice(["never", [], {}, -1])}).encode(),
        lambda: json.dumps({"args": [1, 2], "queue": rng.choice([1, [], "no-such-queue", "a\x00b"])}).encode(),
        lambda: json.dumps({"args": [1, 2], "task_id": rng.choice(["a b", "x" * 300, "\x00", 5])}).encode(),
        lambda: json.dumps({"args": list(range(rng.randint(3, 9)))}).encode(),  # demo.add takes two
        lambda: json.dumps({"args": [1, 2], "kwargs": {"\x00": 1}}).encode(),
        lambda: b'{"args": [1, 2], "countdown": NaN}',
        lambda: b'{"args": [' + b"9" * 5000 + b"]}",
    ]
    return rng.choice(choices)()


def malformed(rng: random.Random) -> tuple[str, str, bytes, dict[str, str]]:
    """(method, raw path, body, headers) of one request that must be refused with a 4xx."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    kind = rng.randrange(10)
    if kind <= 3:
        return "POST", rng.choice(SENDS) + "demo.add", bad_body(rng), rng.choice([form, {}, {"Content-Type": "text/plain"}])
    if kind == 4:  # unknown tasks, names no task can have
        name = rng.choice(["tasks.nope", "demo.ad", "x" * 300, "%00", "a%0ab", "..%2f..%2fetc", "%20", "demo.add%00"])
        return "POST", rng.choice(SENDS) + name, b'{"args": [1, 2]}', form
    if kind == 5:  # path tricks on ids and names
        trick = rng.choice(["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "..%2f..%2f", "%00", "a%00b", "%0d%0aX: 1",
                            "%2e%2e", "x%09y", "%ff%fe", "a\x00b", "a b"])
        path = rng.choice(["/api/task/info/", "/api/task/result/", "/api/task/abort/", "/api/task/revoke/"]) + trick
        return ("GET" if "info" in path or "result" in path else "POST"), path, b"", {}
    if kind == 6:  # bad query arguments
        return rng.choice([
            ("GET", "/api/tasks?limit=" + rng.choice(["ten", "-1", "1e9x", "%00"]), b"", {}),
            ("GET", "/api/tasks?sort_by=" + rng.choice(["color", "--name", "%00", "name;drop"]), b"", {}),
            ("GET", "/api/tasks?received_start=" + rng.choice(["yesterday", "2024-13-01 00:00", "%00"]), b"", {}),
            ("GET", "/api/tasks?offset=" + rng.choice(["x", "1.5"]), b"", {}),
            ("GET", "/api/task/result/abc?timeout=" + rng.choice(["x", "-1", "nan", "inf", "1e9"]), b"", {}),
            ("GET", "/api/workers?refresh=" + rng.choice(["maybe", "2", "%00"]), b"", {}),
            ("GET", "/api/workers?status=" + rng.choice(["perhaps", "yes%00"]), b"", {}),
            ("POST", "/api/task/revoke/abc?signal=" + rng.choice(["SIGNOPE", "99", "%00"]), b"", {}),
            ("POST", "/api/task/revoke/abc?terminate=" + rng.choice(["sure", "%00"]), b"", {}),
            ("POST", "/api/task/rate-limit/demo.add" + rng.choice(["", "?ratelimit=fast", "?ratelimit=-1/s"]), b"", {}),
            ("POST", "/api/task/rate-limit/tasks.nope?ratelimit=1/s", b"", {}),
            ("POST", "/api/task/timeout/demo.add?soft=" + rng.choice(["x", "-1", "nan", "100&hard=30"]), b"", {}),
            ("POST", "/api/task/rate-limit/demo.add", b"ratelimit=%ff%fe", form),
        ])
    if kind == 7:  # worker control with bad arguments (checked before the worker is asked)
        worker = rng.choice(["default@x", "%00", "a%0ab"])
        return rng.choice([
            ("POST", f"/api/worker/pool/grow/{worker}?n=" + rng.choice(["0", "-3", "x", "1e3"]), b"", {}),
            ("POST", f"/api/worker/pool/shrink/{worker}?n=" + rng.choice(["0", "many"]), b"", {}),
            ("POST", f"/api/worker/pool/autoscale/{worker}" + rng.choice(["", "?min=3&max=2", "?min=x&max=2"]), b"", {}),
            ("POST", f"/api/worker/queue/add-consumer/{worker}" + rng.choice(["", "?queue=", "?queue=%00"]), b"", {}),
            ("POST", f"/api/worker/queue/cancel-consumer/{worker}", b"", {}),
        ])
    if kind == 8:  # wrong methods and unknown paths
        return rng.choice([
            ("GET", rng.choice(SENDS) + "demo.add", b"", {}),
            ("POST", "/api/tasks", b"{}", form),
            ("DELETE", "/api/workers", b"", {}),
            ("PUT", "/api/task/revoke/abc", b"", {}),
            ("GET", "/api/" + rng.choice(["nope", "task", "task/", "worker/pool/grow/", "../api/tasks/x"]), b"", {}),
            ("GET", rng.choice(["/", "/metrics/../x", "/api/v1/health", "/%2e%2e/%2e%2e/etc/passwd"]), b"", {}),
        ])
    return rng.choice([  # hostile clients: a web page, a rebinding Host, huge bodies
        ("POST", "/api/task/async-apply/demo.add", b'{"args": [1, 2]}', {"Origin": "https://evil.example"}),
        ("POST", "/api/task/async-apply/demo.add", b'{"args": [1, 2]}', {"Sec-Fetch-Site": "cross-site"}),
        ("POST", "/api/task/async-apply/demo.add", b'{"args": [1, 2]}', {"Host": "evil.example"}),
        ("POST", "/api/task/async-apply/demo.add", b"x" * (1024 * 1024 + 1), {}),
        ("POST", "/api/task/apply/demo.add", b'{"args": ["' + b"a" * 1_100_000 + b'"]}', form),
    ])


def raw_request(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    """The status of one request written byte for byte (no client library tidies the path)."""
    head = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body)), "Connection": "close", **headers}
    data = f"{method} {path} HTTP/1.1\r\n".encode("latin-1")
    data += "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode("latin-1") + b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # refused before the whole body was read
            pass
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_a_thousand_malformed_requests_get_4xx(stack: Stack) -> None:
    assert stack.api is not None and stack.api.flower is not None and stack.api.flower.port is not None
    port = stack.api.flower.port
    assert stack.events is not None
    before = len(stack.events)
    rng = random.Random(22)
    statuses: Counter[int] = Counter()
    wrong = []
    started = time.monotonic()
    for _ in range(COUNT):
        method, path, body, headers = malformed(rng)
        status = raw_request(port, method, path, body, headers)
        statuses[status] += 1
        if not 400 <= status < 500:
            wrong.append((status, method, path[:80], body[:80]))
    took = time.monotonic() - started
    print(f"{COUNT} malformed requests in {took:.1f} s: {dict(sorted(statuses.items()))}")
    assert wrong == []
    assert sum(statuses.values()) == COUNT
    for status in (400, 403, 404, 405, 413):
        assert statuses[status], f"no {status} among {dict(statuses)}"
    # The server is still up, nothing was sent, and a good request works.
    time.sleep(0.5)
    assert len(stack.events) == before
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as flower:
        assert flower.get("/healthcheck").text == "OK"
        answer = flower.post("/api/task/apply/demo.add", json={"args": [20, 22]})
        assert answer.json()["result"] == 42
