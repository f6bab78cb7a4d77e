"""The embedded broker: fakeredis inside the Stalk process, on a Unix socket (or loopback TCP), with a password."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from stalk.embedded.broker.base import BrokerError
from stalk.embedded.net import LOOPBACK
from stalk.embedded.patches import LoopbackFakeServer, UnixFakeServer

DURABILITY = "embedded (in memory): queued tasks and results are lost when Stalk exits"


class EmbeddedRedisServer:
    """A Redis-compatible server on the Unix socket `listen` (a path), or on 127.0.0.1:`listen` (a port),
    serving real worker subprocesses.

    Clients must AUTH with `password` first (see auth_gate); the server never listens beyond loopback."""

    def __init__(self, listen: Path | int = 0, password: str | None = None) -> None:
        self._listen = listen
        self._password = password
        self._server: LoopbackFakeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port (BrokerError on a Unix socket)."""
        address = self.address
        if isinstance(address, Path):
            raise BrokerError(f"embedded broker listens on the Unix socket {address}, not on TCP")
        return address

    @property
    def address(self) -> Path | int:
        """The socket's path, or the TCP port."""
        if self._server is None:
            raise BrokerError("embedded broker is not running")
        address = self._server.server_address
        return Path(address) if isinstance(address, str) else address[1]

    def start(self) -> None:
        try:
            server = self._bind()
        except OSError as exc:
            where = self._listen if isinstance(self._listen, Path) else f"{LOOPBACK}:{self._listen}"
            raise BrokerError(f"embedded broker cannot listen on {where}: {exc.strerror}") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="stalk-embedded-broker", daemon=True)
        self._thread.start()

    def _bind(self) -> LoopbackFakeServer:
        if not isinstance(self._listen, Path):
            return LoopbackFakeServer((LOOPBACK, self._listen), self._password)
        with contextlib.suppress(FileNotFoundError):
            self._listen.unlink()  # a socket a killed Stalk left behind (the dir is the user's alone)
        server = UnixFakeServer(str(self._listen), self._password)  # in a 0700 dir: no one else reaches it
        os.chmod(self._listen, 0o600)
        return server

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if isinstance(self._listen, Path):
            with contextlib.suppress(OSError):
                self._listen.unlink()
        self._server = None
