"""Where the Flower-compatible API listens: its own TCP port (5555 by default, as Flower), served by a
second uvicorn server on the stack API's event loop (one thread, one process). A port already taken
does not stop the stack: `problem` says why the API is not served (the stack's own log and status)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import uvicorn

from stalk.embedded.config import FLOWER_OPEN, ConfigError, FlowerConfig, is_loopback
from stalk.embedded.service.files import bind_tcp

if TYPE_CHECKING:
    from stalk.embedded.stack import Stack


BACKLOG = 128
MAX_CONNECTIONS = 256  # TCP connections open at once; more are answered 503 and closed
_BUSY_TEXT = f"Service Unavailable: {MAX_CONNECTIONS} connections open already; close some".encode()
BUSY = (f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(_BUSY_TEXT)}\r\nconnection: close\r\n\r\n").encode() + _BUSY_TEXT


def flower_protocol(stack_protocol: type) -> type:
    """The stack API's bounded protocol with room for more clients (n8n, scripts) and a text refusal, on
    httptools' C parser (a dependency: ~12% less CPU a send than h11's, bench/RESULTS.md); on the stack
    API's h11 where httptools cannot be imported."""
    from stalk.embedded.service.server import Bounded  # server.py imports this module

    extra = {"limit": MAX_CONNECTIONS, "busy": BUSY}
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return type("FlowerH11Protocol", (stack_protocol,), extra)
    return type("FlowerHttpToolsProtocol", (Bounded, HttpToolsProtocol), extra)


class FlowerListener:
    def __init__(self, stack: Stack, config: FlowerConfig) -> None:
        if config.enabled and not is_loopback(config.host) and not config.auth:
            raise ConfigError(f"flower.host = {config.host!r}: {FLOWER_OPEN}")
        self.stack = stack
        self.config = config
        self.socket: socket.socket | None = None
        self.port: int | None = None
        self.problem: str | None = None if config.enabled else "turned off (flower.enabled = false)"
        self.server: uvicorn.Server | None = None
        self.app: Any = None

    def bind(self) -> socket.socket | None:
        """The listening socket, or None (and `problem`) when the port is taken or the API is off."""
        if not self.config.enabled:
            return None
        try:
            self.socket = bind_tcp(self.config.host, self.config.port, BACKLOG)
        except OSError as exc:
            self.problem = (f"the Flower-compatible API is not served: cannot listen on {self.config.host} port "
                            f"{self.config.port} ({exc.strerror or exc}); is Flower still running? Stop it, or "
                            f"set another port ([flower] port in stalk.toml or STALK_FLOWER_PORT)")
            self.stack.note(self.problem)
            return None
        self.port = self.socket.getsockname()[1]
        self.stack.note(f"Flower-compatible API on {self.url()}"
                        + (" (credentials required)" if self.config.auth else ""))
        return self.socket

    def make_server(self, config: dict[str, Any]) -> uvicorn.Server | None:
        """A uvicorn server for the bound socket (`config`: the stack API's uvicorn settings)."""
        if self.socket is None:
            return None
        from stalk.embedded.service.flower.app import build_flower_app

        settings = {**config, "http": flower_protocol(config["http"])}
        self.app = build_flower_app(self.stack, self.config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, **settings))
        return self.server

    def url(self) -> str | None:
        if self.port is None:
            return None
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    def address(self) -> dict[str, Any]:
        return {"url": self.url(), "auth": self.config.auth, "problem": self.problem}

    def close(self) -> None:
        if self.app is not None:
            self.app.state.publisher.stop()
        if self.socket is not None:
            self.socket.close()
            self.socket = None
