"""Who may call the API: the token holder, from this machine, never a web page.

Every request carries the data dir's token (`Authorization: Bearer` or `X-Stalk-Token`; never in the
query string, which ends up in logs and shell history). A browser can still aim requests at a loopback
port: DNS rebinding (a foreign name resolving to 127.0.0.1) is refused by the Host check, a page's fetch
by the Origin / Sec-Fetch-Site check (the API has no browser clients), and a form or text/plain POST
(which needs no CORS preflight) by the content-type check on anything that changes state. Bodies are
read here, up to MAX_BODY, before any route sees them, so no client can make the stack buffer more.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Refusal = tuple[int, str]

TOKEN_HEADER = "x-stalk-token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNIX_HOST = "stalk"  # the Host StackClient names on the Unix socket (accepted there only)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIMPLE_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
OPEN_PATHS = frozenset({"/api/v1/health"})  # answers "up" and nothing else, for probes
MAX_BODY = 1024 * 1024  # bytes: a request body larger than this is refused (413)


def host_name(value: str) -> str:
    """The name part of a Host header: `[::1]:8080` -> `::1`, `localhost:5` -> `localhost`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def on_unix_socket(scope: Scope) -> bool:
    """uvicorn names a Unix socket's server (path, None), a TCP one (address, port)."""
    server = scope.get("server")
    return server is not None and server[1] is None


async def refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of the whole API (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, hosts: Iterable[str] = (), max_body: int = MAX_BODY) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = LOOPBACK_NAMES | {h.lower() for h in hosts}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets (uvicorn runs with ws="none")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        problem = self.refusal(scope, headers)
        if problem is None:
            body, problem = await self.read_body(scope, headers, receive)
            if body is not None:
                receive = replay(body, receive)
        if problem is None:
            await self.app(scope, receive, send)
        elif problem[0]:
            await refuse(send, *problem)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        if scope.get("http_version") != "1.1":
            return 505, f"HTTP/{scope.get('http_version')} is not served: use HTTP/1.1"
        host = host_name(headers.get("host", ""))
        if host not in self.hosts and not (host == UNIX_HOST and on_unix_socket(scope)):
            return 403, f"Host {host or '(none)'!r} is not this stack's: requests must name localhost or 127.0.0.1"
        origin = headers.get("origin")
        if origin is not None:
            return 403, f"requests from web pages are refused (Origin {origin})"
        if headers.get("sec-fetch-site", "none") != "none":
            return 403, "requests from web pages are refused (Sec-Fetch-Site)"
        if scope.get("path") in OPEN_PATHS:
            return None
        if not self._token_ok(headers):
            return 401, ("missing or wrong API token: send the one in <data dir>/state/api.token as "
                         "'Authorization: Bearer TOKEN'")
        return self._content_refusal(scope, headers)

    def _content_refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        length = headers.get("content-length", "")
        if length.strip().isdigit() and int(length) > self.max_body:
            return 413, f"request body of {int(length)} bytes refused: the limit is {self.max_body}"
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype in SIMPLE_TYPES:
            return 415, f"send JSON (Content-Type: application/json), not {ctype}"
        has_body = "transfer-encoding" in headers or length.strip() not in ("", "0")
        if has_body and not ctype:
            return 415, "send JSON (Content-Type: application/json): this body has no content type"
        return None

    async def read_body(self, scope: Scope, headers: dict[str, str],
                        receive: Receive) -> tuple[bytes | None, Refusal | None]:
        """The whole body of a state-changing request (at most max_body bytes), read before any route runs.
        (None, (0, "")) when the client went away meanwhile: nothing to answer."""
        if scope.get("method", "GET") in SAFE_METHODS:
            return None, None
        return await read_limited(receive, self.max_body)

    def _token_ok(self, headers: dict[str, str]) -> bool:
        given = headers.get(TOKEN_HEADER, "")
        auth = headers.get("authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the body read by the guard to the route, then waits on the client."""
    pending = [body]

    async def again() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return again


async def read_limited(receive: Receive, max_body: int) -> tuple[bytes | None, Refusal | None]:
    """A request's whole body, refused (413) past `max_body` bytes; (None, (0, "")) when the client went
    away meanwhile: nothing to answer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, (0, "")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            return None, (413, f"request body over {max_body} bytes refused")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
