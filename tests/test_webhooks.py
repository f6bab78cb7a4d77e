"""Webhooks ([[webhooks]] in stalk.toml): tasks reaching a configured state are POSTed to a real local HTTP
receiver, once each, signed, filtered by task-name glob and state; the API lists and retries deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stalk.embedded import Stack
from stalk.embedded.config import ConfigError
from stalk.embedded.service import ApiError
from tests.api_support import client_of
from tests.conftest import make_config, module_stack, wait_until

SECRET = "webhook-secret"
APP = "tests.apps.events_app:eager_app"


@dataclass(frozen=True)
class Received:
    path: str
    delivery: int
    signature: str | None
    body: bytes
    payload: dict[str, Any]
    at: float


class Receiver:
    """A real HTTP server on a loopback port that records each POST; `down()` closes the port (connection
    refused), `up()` listens on it again; `delay` slows each answer."""

    def __init__(self, delay: float = 0.0) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.delay = delay
        self.refuse: set[str] = set()  # task ids answered 400 (not recorded)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if json.loads(body).get("task_id") in receiver.refuse:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.received.append(Received(
                        self.path, int(self.headers["X-Stalk-Delivery"]), self.headers.get("X-Stalk-Signature"),
                        body, json.loads(body), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def hooks(receiver: Receiver, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"url": receiver.url("/all"), "secret": SECRET, "backoff_max": 1, **extra},
        {"url": receiver.url("/adds"), "tasks": ["ev.add"], "states": ["SUCCESS"], "backoff_max": 1},
        {"url": receiver.url("/failures"), "tasks": ["ev.b*", "nothing.*"], "states": ["failure"], "timeout": 5},
    ]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver().up()
    yield rec
    rec.down()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("webhooks") / "data", broker={"mode": "eager"}, app=APP,
                      webhooks=hooks(receiver)) as running:
        yield running


def test_each_notification_arrives_once_signed_and_filtered(stack: Stack, receiver: Receiver) -> None:
    adds = [stack.app.tasks["ev.add"].delay(i, 1) for i in range(5)]
    booms = [stack.app.tasks["ev.boom"].delay(f"bad {i}") for i in range(2)]
    ids = {r.id for r in adds + booms}
    assert wait_until(lambda: len(receiver.at("/all")) >= 7 and len(receiver.at("/adds")) >= 5
                      and len(receiver.at("/failures")) >= 2, timeout=15)
    time.sleep(1.0)  # nothing more comes
    every = receiver.at("/all")
    assert sorted(r.payload["task_id"] for r in every) == sorted(ids)  # each once
    assert len({r.delivery for r in receiver.snapshot()}) == len(receiver.snapshot())
    for r in every:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.signature == expected
    assert {r.payload["task_id"] for r in receiver.at("/adds")} == {a.id for a in adds}
    assert {r.payload["task_id"] for r in receiver.at("/failures")} == {b.id for b in booms}
    assert all(r.signature is None for r in receiver.at("/adds"))

    one = next(r.payload for r in every if r.payload["task_id"] == adds[3].id)
    assert (one["name"], one["state"], one["args"], one["result"], one["event"]) == \
           ("ev.add", "SUCCESS", "(3, 1)", "4", "task.success")
    assert one["worker"].startswith("eager@") and one["timestamps"]["finished"] is not None
    failed = next(r.payload for r in every if r.payload["task_id"] == booms[0].id)
    assert failed["state"] == "FAILURE" and "bad 0" in failed["exception"]


def test_the_api_lists_counts_and_retries(stack: Stack, receiver: Receiver) -> None:
    done = stack.app.tasks["ev.add"].delay(40, 2)
    assert wait_until(lambda: any(r.payload["task_id"] == done.id for r in receiver.at("/adds")), timeout=10)
    with client_of(stack) as client:
        info = client.get("/webhooks")
        assert [h["url"] for h in info["hooks"]] == [h["url"] for h in hooks(receiver)]
        assert info["hooks"][0]["signed"] is True and "secret" not in json.dumps(info).replace("signed", "")
        assert info["hooks"][2]["states"] == ["FAILURE"]
        assert wait_until(lambda: client.get("/webhooks")["hooks"][1]["counts"]["delivered"] >= 6, timeout=10)
        rows = client.get("/webhooks/deliveries", limit=5)
        assert len(rows) == 5 and rows[0]["id"] > rows[-1]["id"]
        ours = next(r for r in client.get("/webhooks/deliveries", limit=50)
                    if r["task_id"] == done.id and r["hook"].endswith("/adds"))
        assert wait_until(lambda: client.get("/webhooks/deliveries", limit=50, failures=False) and
                          _row(client, ours["id"])["status"] == "delivered", timeout=10)
        assert client.get("/webhooks/deliveries", failures=True) == []
        with pytest.raises(ApiError) as acked:
            client.post(f"/webhooks/deliveries/{ours['id']}/retry")
        assert acked.value.status == 409 and "never sent again" in acked.value.message
        with pytest.raises(ApiError) as unknown:
            client.post("/webhooks/deliveries/999999/retry")
        assert unknown.value.status == 404


def _row(client: Any, delivery_id: int) -> dict[str, Any]:
    return next(r for r in client.get("/webhooks/deliveries", limit=200) if r["id"] == delivery_id)


def test_retry_now_skips_the_back_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver down, then a long back-off (a first wait of 60 s here): retry now sends at once."""
    from stalk.embedded.webhooks import delivery

    monkeypatch.setattr(delivery, "BACKOFF_INITIAL", 60.0)
    receiver = Receiver()
    config = make_config(tmp_path / "data", broker={"mode": "eager"}, app=APP,
                         webhooks=[{"url": receiver.url(), "backoff_max": 600}])
    with Stack(config) as stack, client_of(stack) as client:
        done = stack.app.tasks["ev.add"].delay(1, 1)
        assert wait_until(lambda: bool(client.get("/webhooks/deliveries", failures=True)), timeout=10)
        receiver.up()
        try:
            time.sleep(1.5)
            assert receiver.snapshot() == []  # still backing off
            row = client.get("/webhooks/deliveries", failures=True)[0]
            assert row["task_id"] == done.id and row["last_error"] and row["status"] == "failing"
            again = client.post(f"/webhooks/deliveries/{row['id']}/retry")
            assert again["id"] == row["id"]
            assert wait_until(lambda: len(receiver.snapshot()) == 1, timeout=5)
            assert wait_until(lambda: _row(client, row["id"])["status"] == "delivered", timeout=5)
        finally:
            receiver.down()


def test_without_webhooks_the_api_says_so(running_stack) -> None:
    stack = running_stack(broker={"mode": "eager"}, app=APP)
    with client_of(stack) as client:
        assert client.get("/webhooks") == {"hooks": [], "outbox": None}
        assert client.get("/webhooks/deliveries") == []
        with pytest.raises(ApiError) as none:
            client.post("/webhooks/deliveries/1/retry")
        assert none.value.status == 404 and "[[webhooks]]" in none.value.message
    assert not (stack.paths.state / "webhooks.sqlite3").exists()


@pytest.mark.parametrize(("table", "message"), [
    ({"url": "ftp://x"}, "expected an http:// or https:// URL"),
    ({"url": "http://"}, "with a host"),
    ({}, "webhooks[0].url"),
    ({"url": "http://h", "states": ["DONE"]}, "expected states among"),
    ({"url": "http://h", "tasks": []}, "webhooks[0].tasks"),
    ({"url": "http://h", "timeout": 0}, "webhooks[0].timeout"),
    ({"url": "http://h", "secret": 3}, "webhooks[0].secret"),
    ({"url": "http://h", "colour": "red"}, "unknown key webhooks[0].colour"),
])
def test_bad_webhook_config_is_refused_clearly(tmp_path: Path, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_config(tmp_path, webhooks=[table])


def test_webhook_config_from_toml(tmp_path: Path) -> None:
    from stalk.embedded.config import load_config

    toml = tmp_path / "stalk.toml"
    toml.write_text('[[webhooks]]\nurl = "https://example.com/h"\ntasks = ["app.*"]\nstates = ["success", "RETRY"]\n'
                    'secret = "s"\ntimeout = 2.5\n\n[[webhooks]]\nurl = "http://127.0.0.1:9/x"\n')
    config = load_config(config_file=toml, environ={})
    first, second = config.webhooks
    assert (first.tasks, first.states, first.secret, first.timeout) == (("app.*",), ("SUCCESS", "RETRY"), "s", 2.5)
    assert (second.tasks, second.states, second.secret) == (("*",), ("SUCCESS", "FAILURE"), None)
    toml.write_text('[[webhooks]]\nurl = "http://a/"\n[[webhooks]]\nurl = "http://a/"\n')
    with pytest.raises(ConfigError, match="each webhook URL once"):
        load_config(config_file=toml, environ={})


def test_the_cli_lists_deliveries_and_retries(stack: Stack, receiver: Receiver, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import clean_env, stalk_cmd

    done = stack.app.tasks["ev.add"].delay(7, 7)
    assert wait_until(lambda: any(r.payload["task_id"] == done.id for r in receiver.at("/adds")), timeout=10)

    def stalk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(stalk_cmd("webhooks", "--data-dir", str(stack.paths.data_dir), *args),
                              capture_output=True, text=True, env=clean_env(), timeout=60)

    listed = stalk("--json", "--limit", "200")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert len(data["hooks"]) == 3 and any(r["task_id"] == done.id for r in data["deliveries"])
    text = stalk()
    assert text.returncode == 0 and "delivered" in text.stdout and receiver.url("/adds") in text.stdout
    assert stalk("--failures").stdout.strip().endswith("no failing deliveries")
    acked = stalk("retry", str(data["deliveries"][0]["id"]))
    assert acked.returncode == 1 and "never sent again" in acked.stderr
    assert "no stack runs" in subprocess.run(
        stalk_cmd("webhooks", "--data-dir", str(tmp_path / "none"), "retry", "1"), capture_output=True, text=True,
        env=clean_env(), timeout=60).stderr


def test_a_refused_notification_waits_alone(stack: Stack, receiver: Receiver) -> None:
    """A 4xx (the receiver refuses that notification) backs off that row only: other tasks still go."""
    refused = stack.app.tasks["ev.add"].delay(100, 1)
    receiver.refuse.add(refused.id)
    with client_of(stack) as client:
        failing = wait_until(lambda: [r for r in client.get("/webhooks/deliveries", failures=True)
                                      if r["task_id"] == refused.id], timeout=10)
        assert all(r["last_status"] == 400 and "refused" in r["last_error"] for r in failing)
        other = stack.app.tasks["ev.add"].delay(200, 1)
        assert wait_until(lambda: any(r.payload["task_id"] == other.id for r in receiver.at("/adds")), timeout=10)
        receiver.refuse.clear()
        for row in failing:
            client.post(f"/webhooks/deliveries/{row['id']}/retry")
        assert wait_until(lambda: not client.get("/webhooks/deliveries", failures=True), timeout=10)
    assert [r.payload["task_id"] for r in receiver.at("/adds")].count(refused.id) == 1


def test_a_dead_delivery_thread_is_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver().up()
    config = make_config(tmp_path / "data", broker={"mode": "eager"}, app=APP, webhooks=[{"url": receiver.url()}])
    try:
        with Stack(config) as stack:
            assert stack.webhooks is not None
            deliverer = stack.webhooks.deliverer
            real = deliverer.pass_once
            calls = {"n": 0}

            def dies_once() -> int:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("delivery bug")
                return real()

            monkeypatch.setattr(deliverer, "pass_once", dies_once)
            first = deliverer.thread
            deliverer.wake()
            assert wait_until(lambda: deliverer.thread is not first and deliverer.thread.is_alive(), timeout=10)
            assert any(p.name == "thread:webhook delivery" and p.restarts == 1 for p in stack.processes())
            done = stack.app.tasks["ev.add"].delay(1, 2)
            assert wait_until(lambda: any(r.payload["task_id"] == done.id for r in receiver.snapshot()), timeout=10)
    finally:
        receiver.down()
