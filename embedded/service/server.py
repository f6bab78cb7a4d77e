"""ApiServer: the stack's local API (FastAPI on uvicorn) on a 0600 Unix socket and, when configured, a
loopback TCP port; served from one thread of the stack process with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stalk.embedded.config import ApiConfig, ConfigError
from stalk.embedded.service.files import (
    bind_tcp,
    bind_unix,
    load_or_create_token,
    release_fallback,
    socket_path,
)
from stalk.embedded.service.hub import ChangeHub

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from stalk.embedded.stack import Stack

API_PREFIX = "/api/v1"
STARTUP_TIMEOUT = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """Serves `stack` until `stop()`; `address()` says where (for the status file and clients)."""

    def __init__(self, stack: Stack, config: ApiConfig, state_dir: Path) -> None:
        if config.port is not None and not is_loopback(config.host):
            raise ConfigError(f"api.host {config.host!r}: the API listens on loopback only; to reach it from "
                              f"another machine, tunnel it: ssh -L 8765:127.0.0.1:PORT host")
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
        self._unsubscribe: list[Any] = []

    def start(self) -> ApiServer:
        """Bind (ConfigError naming the port when it is taken), then serve from a thread."""
        import uvicorn

        self.token = load_or_create_token(self.state_dir)
        self.socket_path = socket_path(self.state_dir)
        self._sockets = [bind_unix(self.socket_path)]
        if self.config.port is not None:
            try:
                tcp = bind_tcp(self.config.host, self.config.port)
            except OSError as exc:
                self._close_sockets()
                raise ConfigError(f"api.port {self.config.port} on {self.config.host}: cannot listen "
                                  f"({exc.strerror}); choose another port or stop what uses it") from None
            self._sockets.append(tcp)
            self.port = tcp.getsockname()[1]
        app = self.build_app()
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, ws="none", http="h11")
        self._server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="stalk-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._wire()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        asyncio.run(self._server.serve(sockets=self._sockets))

    def build_app(self) -> FastAPI:
        from stalk.embedded.service.app import build_app

        app = build_app(self.token, hosts=[self.config.host])
        app.state.stack = self.stack
        app.state.hub = self.hub
        app.state.closing = self.closing
        app.state.server = self
        return app

    def _wire(self) -> None:
        """Stack changes into the hub (the store's and the supervisor's listeners: stack threads)."""
        events = self.stack.events
        if events is not None:
            self._unsubscribe.append(events.subscribe(self._task_changes))
        self._unsubscribe.append(self.stack.subscribe(lambda snapshot: self.hub.publish(
            "processes", [p.name for p in snapshot])))

    def _task_changes(self, changes: Any) -> None:
        if changes.tasks:
            self.hub.publish("tasks", changes.tasks)
        if changes.workers:
            self.hub.publish("workers", changes.workers)

    def address(self) -> dict[str, Any]:
        return {"socket": str(self.socket_path) if self.socket_path else None,
                "url": f"http://127.0.0.1:{self.port}" if self.port else None,
                "token_file": str(self.state_dir / "api.token")}

    def stop(self) -> None:
        self.closing.set()
        for unsubscribe in self._unsubscribe:
            with contextlib.suppress(Exception):
                unsubscribe()
        self._unsubscribe = []
        if self._server is not None:
            self._server.should_exit = True
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
