"""The embedded broker: fakeredis inside the Stalk process, on loopback, with a password."""

from __future__ import annotations

import threading

from stalk.embedded.broker.base import BrokerError
from stalk.embedded.net import LOOPBACK
from stalk.embedded.patches import LoopbackFakeServer

DURABILITY = "embedded (in memory): queued tasks and results are lost when Stalk exits"


class EmbeddedRedisServer:
    """A Redis-compatible server on 127.0.0.1:`port`, serving real worker subprocesses.

    Clients must AUTH with `password` first (see auth_gate); the server never listens beyond loopback."""

    def __init__(self, port: int = 0, password: str | None = None) -> None:
        self._requested_port = port
        self._password = password
        self._server: LoopbackFakeServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise BrokerError("embedded broker is not running")
        return self._server.server_address[1]

    def start(self) -> None:
        try:
            server = LoopbackFakeServer((LOOPBACK, self._requested_port), self._password)
        except OSError as exc:
            raise BrokerError(f"embedded broker cannot listen on {LOOPBACK}:{self._requested_port}: {exc.strerror}") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="stalk-embedded-broker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
