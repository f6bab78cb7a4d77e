"""Who the stack's API refuses, over the real sockets of a started (eager, in-process) stack: its 0600 Unix
socket and, with `[api] port = 0`, a loopback TCP port. Requests are written by hand (raw HTTP/1.1 on a
socket), so each test says exactly what a client, or a web page in a browser, sends."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stalk.embedded import Stack
from stalk.embedded.config import ConfigError
from stalk.embedded.service.files import (
    FALLBACK_RECORD,
    bind_unix,
    load_or_create_token,
    release_fallback,
    socket_path,
)
from stalk.embedded.service.guard import MAX_BODY, Guard
from stalk.embedded.service.server import MAX_TCP_CONNECTIONS
from stalk.embedded.status_file import read_status

from .conftest import clean_env, make_config, module_stack, stalk_cmd

EAGER: dict[str, Any] = {"broker": {"mode": "eager"}, "beat": False}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("api-security") / "data", **EAGER, api={"port": 0}) as running:
        yield running


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return (stack.paths.state / "api.token").read_text().strip()


class Listener:
    """One of the stack's listening sockets, spoken to in raw HTTP."""

    def __init__(self, stack: Stack, kind: str) -> None:
        assert stack.api is not None
        self.kind = kind
        self.path = str(stack.api.socket_path)
        self.port = stack.api.port
        self.host = "stalk" if kind == "unix" else f"127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        if self.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
        else:
            sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(10)
        return sock

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
             version: str = "HTTP/1.1", expect_json: bool = True) -> tuple[int, dict]:
        head = {"Host": self.host, "Connection": "close", **(headers or {})}
        if body and "Content-Length" not in head and "Transfer-Encoding" not in head:
            head["Content-Length"] = str(len(body))
        lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in head.items() if v is not None)]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        with self.connect() as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(raw)
            return read_response(sock, expect_json)


def read_response(sock: socket.socket, expect_json: bool = True) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    content_type = response.getheader("content-type", "")
    data = response.read()
    if not expect_json:
        return response.status, {}
    assert content_type.startswith("application/json"), (response.status, content_type, data[:200])
    return response.status, json.loads(data)


@pytest.fixture(params=["unix", "tcp"])
def api(request: pytest.FixtureRequest, stack: Stack) -> Listener:
    return Listener(stack, request.param)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(answer: tuple[int, dict], status: int, *words: str) -> None:
    code, body = answer
    assert code == status, body
    assert set(body) == {"error"} and all(w in body["error"] for w in words), body


# -- the token -------------------------------------------------------------------------------------


def test_the_token_holder_is_answered(api: Listener, token: str) -> None:
    assert api.send("GET", "/api/v1/stack", bearer(token))[1]["mode"] == "eager"
    assert api.send("GET", "/api/v1/stack", {"X-Stalk-Token": token})[0] == 200


def test_no_token_is_refused(api: Listener) -> None:
    assert_refused(api.send("GET", "/api/v1/stack"), 401, "api.token", "Authorization: Bearer")


@pytest.mark.parametrize("auth", ["Bearer nope", "Bearer ", "Basic c3RhbGs6c3RhbGs=", "{token}", "Bearer {token}x"])
def test_a_wrong_token_is_refused(api: Listener, token: str, auth: str) -> None:
    assert_refused(api.send("GET", "/api/v1/stack", {"Authorization": auth.format(token=token)}), 401, "token")


def test_a_token_in_the_query_string_does_not_count(api: Listener, token: str) -> None:
    for query in (f"token={token}", f"access_token={token}", f"api_token={token}&Authorization=Bearer+{token}"):
        assert_refused(api.send("GET", f"/api/v1/stack?{query}"), 401, "token")


def test_the_guard_answers_before_any_route(api: Listener) -> None:
    """No route (not even a 404 or a validation error) is reached without the token."""
    assert_refused(api.send("GET", "/api/v1/no-such-thing"), 401, "token")
    assert_refused(api.send("POST", "/api/v1/stack/stop", {"Content-Type": "application/json"}, b"{not json"),
                   401, "token")


def test_health_is_open_and_says_nothing_else(api: Listener) -> None:
    assert api.send("GET", "/api/v1/health") == (200, {"status": "up"})
    assert_refused(api.send("GET", "/api/v1/health", {"Host": "evil.example"}), 403, "evil.example")


# -- browsers: DNS rebinding, cross-site requests ---------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[::2]:80"])
def test_a_rebinding_host_is_refused(api: Listener, token: str, host: str) -> None:
    assert_refused(api.send("GET", "/api/v1/stack", {**bearer(token), "Host": host}), 403, "Host")


def test_no_host_is_refused(api: Listener, token: str) -> None:
    """HTTP/1.1 requires a Host: h11 answers 400 before the guard (plain text: no route ran either)."""
    headers = {**bearer(token), "Host": None}
    assert api.send("GET", "/api/v1/stack", headers, expect_json=False)[0] == 400  # type: ignore[arg-type]


def test_the_unix_socket_name_is_no_host_on_tcp(stack: Stack, token: str) -> None:
    assert_refused(Listener(stack, "tcp").send("GET", "/api/v1/stack", {**bearer(token), "Host": "stalk"}),
                   403, "Host")
    tcp = Listener(stack, "tcp")
    for host in (f"localhost:{tcp.port}", f"127.0.0.1:{tcp.port}"):
        assert tcp.send("GET", "/api/v1/stack", {**bearer(token), "Host": host})[0] == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # sandboxed iframes, file:// pages
    {"Origin": "http://localhost:3000"},  # another local web app is a web page too
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_web_pages_are_refused_even_with_the_token(api: Listener, token: str, headers: dict[str, str]) -> None:
    assert_refused(api.send("GET", "/api/v1/stack", {**bearer(token), **headers}), 403, "web pages")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   "TEXT/PLAIN; charset=utf-8", None])
def test_a_simple_cross_site_post_is_refused_even_with_the_token(api: Listener, token: str, stack: Stack,
                                                                 ctype: str | None) -> None:
    """What a form or a no-cors fetch can send without a preflight: a simple content type, or none at all
    with a body (a Blob): refused before the route, even had the page got hold of the token."""
    headers = {**bearer(token), "Content-Type": ctype}
    answer = api.send("POST", "/api/v1/stack/stop", headers, b'{"x": 1}')  # type: ignore[arg-type]
    assert_refused(answer, 415, "application/json")
    assert not stack.stop_requested.is_set()


def test_a_post_without_a_body_needs_no_content_type(api: Listener, token: str) -> None:
    """`curl -X POST` sends neither: nothing for a route to misread, so it passes (to a 404 here)."""
    assert_refused(api.send("POST", "/api/v1/no-such-thing", bearer(token)), 404, "no such API path")


def test_starlettes_own_refusals_are_json_errors_too(api: Listener, token: str) -> None:
    assert_refused(api.send("GET", "/api/v1/no-such-thing", bearer(token)), 404, "openapi.json")
    assert_refused(api.send("DELETE", "/api/v1/stack", bearer(token)), 405, "method")


# -- the protocol: HTTP/1.1 only, bounded bodies, bounded connections -------------------------------


def test_only_http_1_1_is_served(api: Listener, token: str) -> None:
    assert_refused(api.send("GET", "/api/v1/stack", bearer(token), version="HTTP/1.0"), 505, "HTTP/1.1")


def test_a_body_over_the_limit_is_refused(api: Listener, token: str, stack: Stack) -> None:
    json_post = {**bearer(token), "Content-Type": "application/json"}
    declared = {**json_post, "Content-Length": str(MAX_BODY + 1)}
    assert_refused(api.send("POST", "/api/v1/stack/stop", declared), 413, str(MAX_BODY))
    chunk = b"x" * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 1)) + b"0\r\n\r\n"
    answer = api.send("POST", "/api/v1/stack/stop", {**json_post, "Transfer-Encoding": "chunked"}, chunked)
    assert_refused(answer, 413, str(MAX_BODY))
    assert not stack.stop_requested.is_set()


def test_the_guard_hands_a_body_under_the_limit_to_the_route() -> None:
    """The guard reads each body itself (to bound it): the route still gets all of it."""
    app = FastAPI()

    @app.post("/echo")
    def echo(body: dict) -> dict:
        return {"size": len(body["data"])}

    app.add_middleware(Guard, token="t")
    data = "y" * (MAX_BODY - 20)

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"data": "', b"z" * 1000, b'"}'):
            yield part

    async def calls() -> list[dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost",
                                     headers={"Authorization": "Bearer t"}) as client:
            whole = await client.post("/echo", json={"data": data})
            streamed = await client.post("/echo", content=chunks(), headers={"Content-Type": "application/json"})
            return [whole.json(), streamed.json()]

    assert asyncio.run(calls()) == [{"size": len(data)}, {"size": 1000}]


def test_tcp_connections_beyond_the_limit_are_refused(stack: Stack, token: str) -> None:
    tcp, unix = Listener(stack, "tcp"), Listener(stack, "unix")
    held = [tcp.connect() for _ in range(MAX_TCP_CONNECTIONS)]
    try:
        with tcp.connect() as extra:
            status, body = read_response(extra)  # answered at once, before it sends anything
        assert status == 503 and "TCP connections" in body["error"] and "Unix socket" in body["error"]
        assert unix.send("GET", "/api/v1/stack", bearer(token))[0] == 200  # the owner's socket is not counted
    finally:
        for sock in held:
            sock.close()
    assert wait_for_ok(lambda: tcp.send("GET", "/api/v1/health")[0] == 200)


def test_a_silent_connection_is_closed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """One that connects and sends nothing (a dead client, a port scan) does not keep its slot."""
    assert stack.api is not None and stack.api._server is not None
    monkeypatch.setattr(stack.api._server.config, "timeout_keep_alive", 0.3)  # read at each connection
    for kind in ("tcp", "unix"):
        with Listener(stack, kind).connect() as sock:
            assert sock.recv(1) == b""  # the server closed it (the socket's own timeout is 10 s)


def wait_for_ok(check, attempts: int = 50) -> bool:
    event = threading.Event()
    for _ in range(attempts):
        if check():
            return True
        event.wait(0.1)
    return False


# -- the docs ---------------------------------------------------------------------------------------


def test_the_openapi_needs_the_token_and_no_docs_page_is_served(api: Listener, token: str) -> None:
    assert_refused(api.send("GET", "/api/v1/openapi.json"), 401, "token")
    status, spec = api.send("GET", "/api/v1/openapi.json", bearer(token))
    assert status == 200 and "/api/v1/stack" in spec["paths"]
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert spec["security"] == [{"token": []}] and spec["paths"]["/api/v1/health"]["get"]["security"] == []
    for page in ("/api/v1/docs", "/api/v1/redoc", "/docs", "/api/v1/docs/oauth2-redirect"):
        assert api.send("GET", page, bearer(token))[0] == 404


# -- files ------------------------------------------------------------------------------------------


def private(path: Path, mode: int) -> bool:
    info = path.lstat()
    return info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == mode


def test_the_socket_and_the_token_are_the_users_alone(stack: Stack) -> None:
    status = read_status(stack.paths.state)
    assert status is not None
    address = status["api"]
    sock, token_file = Path(address["socket"]), Path(address["token_file"])
    assert stat.S_ISSOCK(sock.lstat().st_mode) and private(sock, 0o600)
    assert private(token_file, 0o600)
    assert sock.parent.lstat().st_mode & 0o077 == 0, "others can reach the socket's directory"


def test_a_deep_data_dirs_socket_goes_to_a_private_dir(tmp_path: Path) -> None:
    state = tmp_path / ("d" * 100) / "state"
    state.mkdir(parents=True, mode=0o700)
    path = socket_path(state)
    assert path.parent != state and private(path.parent, 0o700) and (state / FALLBACK_RECORD).is_file()
    sock = bind_unix(path)
    try:
        assert private(path, 0o600)
    finally:
        sock.close()
    release_fallback(state)
    assert not path.parent.exists() and not (state / FALLBACK_RECORD).exists()


def test_the_token_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path)
    assert len(first) >= 40 and private(tmp_path / "api.token", 0o600)
    assert load_or_create_token(tmp_path) == first


# -- starting: where it may listen ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com", "stalk"])
def test_a_non_loopback_host_is_refused_at_start(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only.*ssh -L"):
        make_config(tmp_path / "data", **EAGER, api={"host": host, "port": 8765})


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_are_accepted(tmp_path: Path, host: str) -> None:
    assert make_config(tmp_path / "data", api={"host": host}).api.host == host


def test_a_non_loopback_host_fails_the_stack_cleanly(tmp_path: Path) -> None:
    """A config built in code (not parsed) meets the same check when the API starts."""
    config = make_config(tmp_path / "data", **EAGER)
    config = replace(config, api=replace(config.api, host="0.0.0.0", port=0))
    threads = set(threading.enumerate())
    with pytest.raises(ConfigError, match="loopback only"):
        Stack(config).start()
    assert_nothing_left(config.paths.state, threads)


def test_a_taken_port_fails_the_stack_cleanly(tmp_path: Path) -> None:
    """The stack does not start half-way: `stalk up` exits with the message naming the port, and nothing
    (socket file, status, thread, data dir lock) is left."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    config = make_config(tmp_path / "data", **EAGER, api={"port": port})
    threads = set(threading.enumerate())
    try:
        with pytest.raises(ConfigError, match=rf"api.port = {port}: cannot listen on 127.0.0.1 port {port}"):
            Stack(config).start()
    finally:
        taken.close()
    assert_nothing_left(config.paths.state, threads)
    with Stack(config) as again:  # the lock is free and the port now too
        assert again.api is not None and again.api.port == port


@pytest.mark.procs
def test_stalk_up_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    (tmp_path / "stalk.toml").write_text(f"[api]\nport = {port}\n")
    argv = stalk_cmd("up", "--broker", "eager", "--data-dir", str(tmp_path / "data"), "--config",
                     str(tmp_path / "stalk.toml"))
    try:
        result = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=120, check=False)
    finally:
        taken.close()
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        f"stalk: error: api.port = {port}: cannot listen on 127.0.0.1 port {port} (Address already in use); "
        "choose another port or stop what uses it"], result.stderr
    state = tmp_path / "data" / "state"
    assert not (state / "api.sock").exists() and read_status(state) is None


def assert_nothing_left(state: Path, threads_before: set[threading.Thread]) -> None:
    assert not (state / "api.sock").exists()
    assert read_status(state) is None
    assert not [t for t in threading.enumerate() if t.name == "stalk-api" and t not in threads_before]
