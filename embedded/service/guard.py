"""Who may call the API: the token holder, from this machine, never a web page.

Every request carries the data dir's token (`Authorization: Bearer` or `X-Stalk-Token`). A browser can
still aim requests at a loopback port: DNS rebinding (a foreign name resolving to 127.0.0.1) is refused
by the Host check, a page's fetch by the Origin check, and a form or text/plain POST (which needs no
preflight) by the content-type check on anything that changes state.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = "x-stalk-token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "stalk"})  # "stalk": the Unix socket's clients
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIMPLE_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
OPEN_PATHS = frozenset({"/api/v1/health"})  # answers "up" and nothing else, for probes


def host_name(value: str) -> str:
    """The name part of a Host header: `[::1]:8080` -> `::1`, `localhost:5` -> `localhost`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware in front of the whole API (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = LOOPBACK_NAMES | {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.refusal(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = host_name(headers.get("host", ""))
        if host not in self.hosts:
            return 403, f"Host {host or '(none)'!r} is not this stack's: requests must name localhost or 127.0.0.1"
        origin = headers.get("origin")
        if origin is not None and host_name(origin.split("://", 1)[-1]) not in self.hosts:
            return 403, f"requests from web pages are refused (Origin {origin})"
        if scope.get("path") in OPEN_PATHS:
            return None
        if not self._token_ok(headers):
            return 401, ("missing or wrong API token: send the one in <data dir>/state/api.token as "
                         "'Authorization: Bearer TOKEN'")
        method = scope.get("method", "GET")
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if method not in SAFE_METHODS and ctype in SIMPLE_TYPES:
            return 415, f"send JSON (Content-Type: application/json), not {ctype}"
        return None

    def _token_ok(self, headers: dict[str, str]) -> bool:
        given = headers.get(TOKEN_HEADER, "")
        auth = headers.get("authorization", "")
        if not given and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token)
