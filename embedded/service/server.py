"""ApiServer: the stack's local API (FastAPI on uvicorn) on a 0600 Unix socket and, when configured, a
loopback TCP port; served from one thread of the stack process with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from stalk.embedded.config import NOT_LOOPBACK, ApiConfig, ConfigError, is_loopback
from stalk.embedded.service.files import (
    bind_tcp,
    bind_unix,
    load_or_create_token,
    release_fallback,
    socket_path,
)
from stalk.embedded.service.flower import FlowerListener
from stalk.embedded.service.hub import ChangeHub
from stalk.embedded.service.metrics import StackMetrics

if TYPE_CHECKING:
    from fastapi import FastAPI

    from stalk.embedded.stack import Stack

API_PREFIX = "/api/v1"
STARTUP_TIMEOUT = 10.0
MAX_TCP_CONNECTIONS = 64  # open TCP connections at once; more are answered 503 and closed
BACKLOG = 128
IDLE_TIMEOUT = 5  # seconds: a connection with no request in progress is closed after this


def _busy_response() -> bytes:
    body = json.dumps({"error": f"the stack's API has {MAX_TCP_CONNECTIONS} TCP connections open already: "
                                "close some, or use its Unix socket"}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


BUSY = _busy_response()


class Bounded:
    """Mixed into one of uvicorn's HTTP/1.1 protocols (BoundedH11Protocol below; the Flower-compatible API's
    httptools one): refuses a TCP connection beyond `limit` at accept time (uvicorn's own
    limit_concurrency keeps such a connection open until it sends a request, so idle connections could
    still use up the stack's file descriptors). The Unix socket (0600) is not counted. A connection that
    sends nothing is closed after the keep-alive timeout, as an idle one is after a response (uvicorn
    arms that timer only after a response)."""

    tcp = False
    refused = False
    limit = MAX_TCP_CONNECTIONS  # the Flower-compatible API's own subclass allows more (service/flower)
    busy = BUSY
    connections: set[Any]
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]  # annotations only: uvicorn's protocol has them

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        self.tcp = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        if self.tcp and sum(1 for c in self.connections if getattr(c, "tcp", False)) >= self.limit:
            self.refused = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(self.busy)
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[misc]
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.refused:
            super().connection_lost(exc)  # type: ignore[misc]


class BoundedH11Protocol(Bounded, H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol, Bounded: the stack API's."""


class ApiServer:
    """Serves `stack` until `stop()`; `address()` says where (for the status file and clients)."""

    def __init__(self, stack: Stack, config: ApiConfig, state_dir: Path) -> None:
        if config.port is not None and not is_loopback(config.host):
            raise ConfigError(f"api.host = {config.host!r}: {NOT_LOOPBACK}")
        self.stack = stack
        self.config = config
        self.state_dir = state_dir
        self.hub = ChangeHub()
        self.token = ""
        self.socket_path: Path | None = None
        self.port: int | None = None
        self.closing = threading.Event()
        self.thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._sockets: list[socket.socket] = []
        flower = getattr(stack.config, "flower", None)  # the Flower-compatible API (service/flower)
        self.flower = FlowerListener(stack, flower) if flower is not None else None
        self.metrics = StackMetrics(stack)  # Prometheus: the API's /metrics and the Flower port's (service/metrics)
        self._unsubscribe: list[Any] = []

    def start(self) -> ApiServer:
        """Bind (ConfigError naming the port when it is taken), then serve from a thread. On failure
        nothing is left behind: no socket file, no thread."""
        self.token = load_or_create_token(self.state_dir)
        if self.config.port is not None:  # first: a taken port fails before any file is made
            tcp = self._bind_tcp()
            self._sockets.append(tcp)
            self.port = tcp.getsockname()[1]
        try:
            self.socket_path = socket_path(self.state_dir)
            self._sockets.append(bind_unix(self.socket_path))
        except BaseException:
            self._close_sockets()
            raise
        settings: dict[str, Any] = dict(log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2,
                                        ws="none", http=BoundedH11Protocol, backlog=BACKLOG,
                                        timeout_keep_alive=IDLE_TIMEOUT, server_header=False)
        self._server = uvicorn.Server(uvicorn.Config(self.build_app(), **settings))
        if self.flower is not None and self.flower.bind() is not None:
            self.flower.make_server(settings)
        self.thread = threading.Thread(target=self._serve, name="stalk-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._all_started() and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._all_started():
            self.stop()
            raise RuntimeError(f"the stack's API did not start within {STARTUP_TIMEOUT:.0f} s")
        return self

    def _bind_tcp(self) -> socket.socket:
        try:
            return bind_tcp(self.config.host, self.config.port or 0)
        except OSError as exc:
            raise ConfigError(f"api.port = {self.config.port}: cannot listen on {self.config.host} port "
                              f"{self.config.port} ({exc.strerror}); choose another port or stop what "
                              f"uses it") from None

    def _serve(self) -> None:
        assert self._server is not None
        asyncio.run(self._serve_all())

    async def _serve_all(self) -> None:
        assert self._server is not None
        serving = [self._server.serve(sockets=self._sockets)]
        if self.flower is not None and self.flower.server is not None and self.flower.socket is not None:
            serving.append(self.flower.server.serve(sockets=[self.flower.socket]))
        await asyncio.gather(*serving)

    def _all_started(self) -> bool:
        flower = self.flower.server if self.flower is not None else None
        return bool(self._server is not None and self._server.started and (flower is None or flower.started))

    def build_app(self) -> FastAPI:
        from stalk.embedded.service.app import build_app

        app = build_app(self.token, hosts=[self.config.host])
        app.state.stack = self.stack
        app.state.hub = self.hub
        app.state.closing = self.closing
        app.state.server = self
        return app

    def wire(self) -> None:
        """Stack changes into the hub (the store's and the supervisor's listeners: stack threads). The
        stack calls it once its store, control and processes exist (the API serves from before that)."""
        if self._unsubscribe:
            return
        events = self.stack.events
        if events is not None:
            self._unsubscribe.append(events.subscribe(self._task_changes))
        self._unsubscribe.append(self.stack.subscribe(lambda snapshot: self.hub.publish(
            "processes", [p.name for p in snapshot])))
        self._unsubscribe.append(self.metrics.start().stop)
        if self.stack.alerts is not None:
            self._unsubscribe.append(self.stack.alerts.subscribe(lambda names: self.hub.publish("alerts", names)))

    def _task_changes(self, changes: Any) -> None:
        if changes.tasks:
            self.hub.publish("tasks", changes.tasks)
        if changes.workers:
            self.hub.publish("workers", changes.workers)

    def address(self) -> dict[str, Any]:
        return {"socket": str(self.socket_path) if self.socket_path else None,
                "url": f"http://127.0.0.1:{self.port}" if self.port else None,
                "token_file": str(self.state_dir / "api.token"),
                "flower": self.flower.address() if self.flower is not None else None}

    def stop(self) -> None:
        self.closing.set()
        for unsubscribe in self._unsubscribe:
            with contextlib.suppress(Exception):
                unsubscribe()
        self._unsubscribe = []
        if self._server is not None:
            self._server.should_exit = True
        if self.flower is not None and self.flower.server is not None:
            self.flower.server.should_exit = True
        if self.thread is not None:
            self.thread.join(5)
        self._close_sockets()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        release_fallback(self.state_dir)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets = []
        if self.flower is not None:
            with contextlib.suppress(OSError):
                self.flower.close()
