"""Who may call the Flower-compatible API. Like Flower: with `basic_auth` or `tokens` configured every
request but /healthcheck needs them (`Authorization: Basic` / `Bearer`); without them it answers anyone
who can reach it, which the listener allows on loopback only. Unlike Flower, never a web page: a request
with an Origin (a browser's cross-site POST always has one; curl and n8n send none) or a cross-site
Sec-Fetch-Site is refused, and on loopback a Host that is not this machine's (DNS rebinding) too. Form
bodies are accepted (Flower's own examples send them) since those checks already stop a page's form.
Bodies are read here, up to MAX_BODY, before any route sees them."""

from __future__ import annotations

import base64
import binascii
import hmac

from stalk.embedded.config import FlowerConfig, is_loopback
from stalk.embedded.service.guard import (
    LOOPBACK_NAMES,
    SAFE_METHODS,
    ASGIApp,
    Receive,
    Scope,
    Send,
    host_name,
    read_limited,
    replay,
)

MAX_BODY = 1024 * 1024
OPEN_PATHS = frozenset({"/healthcheck"})
Refusal = tuple[int, str]


async def refuse(send: Send, status: int, message: str) -> None:
    body = message.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Basic realm="flower"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FlowerGuard:
    def __init__(self, app: ASGIApp, config: FlowerConfig, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body
        self.check_host = is_loopback(config.host)
        self.hosts = LOOPBACK_NAMES | {config.host.lower()}
        self.basic = [c.encode() for c in config.basic_auth]
        self.tokens = [t.encode() for t in config.tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        problem = self.refusal(scope, headers)
        if problem is None and scope.get("method", "GET") not in SAFE_METHODS:
            body, problem = await self.read_body(receive)
            if body is not None:
                receive = replay(body, receive)
        if problem is None:
            await self.app(scope, receive, send)
        elif problem[0]:
            await refuse(send, *problem)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        if scope.get("http_version") not in ("1.0", "1.1"):
            return 505, f"HTTP/{scope.get('http_version')} is not served: use HTTP/1.1"
        host = host_name(headers.get("host", ""))
        if self.check_host and host not in self.hosts:
            return 403, f"Host {host or '(none)'!r} is not this machine's: requests must name localhost or 127.0.0.1"
        if headers.get("origin") is not None:
            return 403, f"requests from web pages are refused (Origin {headers['origin']})"
        if headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
            return 403, "requests from web pages are refused (Sec-Fetch-Site)"
        if (self.basic or self.tokens) and scope.get("path") not in OPEN_PATHS and not self.authorized(headers):
            return 401, "Unauthorized: send the credentials set in [flower] basic_auth or tokens"
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > self.max_body:
            return 413, f"request body of {int(length)} bytes refused: the limit is {self.max_body}"
        return None

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and self.basic:
            try:
                given = base64.b64decode(value.encode("latin-1"), validate=True)
            except (binascii.Error, ValueError):
                return False
            return any(hmac.compare_digest(given, c) for c in self.basic)
        if scheme.lower() == "bearer" and self.tokens:
            return any(hmac.compare_digest(value.encode("latin-1"), t) for t in self.tokens)
        return False

    async def read_body(self, receive: Receive) -> tuple[bytes | None, Refusal | None]:
        """The whole body (at most max_body bytes); (None, (0, "")) when the client went away meanwhile."""
        return await read_limited(receive, self.max_body)
