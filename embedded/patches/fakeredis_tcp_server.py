"""Replaces fakeredis's TCP server for the embedded broker: one TCP client served by a fakeredis
connection driven directly, without the latency of fakeredis's own `TcpFakeServer`.

Drives fakeredis's private client layer: `FakeRedisConnection` (fakeredis/_clients/_sync.py; built
with `server=`, `client_info=`, `protocol=`) and its `get_socket()`, `read_response()`, `disconnect()`;
the socket's (fakeredis/_socket/_base.py `BaseFakeSocket`) `sendall()`, `responses` queue,
`_client_info.protocol_version`, and `put_response`, which it wraps on each instance (fakeredis's
pub/sub delivers a published message by calling `put_response` on every subscriber's socket, from the
publisher's thread); `encode_reply` (fakeredis/_clients/_tcp_server.py) and `RaiseErrorTypes`
(fakeredis/_typing.py); `FakeServer(version=, server_type=)` and its `config` (requirepass).

Written against fakeredis 2.41.0 and redis-py 8.2.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks each of those names on a fakeredis connection in memory.

What it buys: fakeredis's TcpFakeServer handler (2.41) costs 40-100 ms per Celery task: it writes every
reply with its own small send() and leaves Nagle on, so a pipelined MULTI/EXEC (kombu's ack
bookkeeping, the result backend's SETEX+PUBLISH) stalls on the client's delayed ACK (40 ms on Linux)
between replies; and it polls for pushed replies (pub/sub messages: results, events) every 10 ms. Here
each batch of input is answered with one send() on a TCP_NODELAY socket, and a pushed reply wakes the
connection's thread through a pipe at once. That send never blocks (MSG_DONTWAIT): what the client has
not read yet waits in the connection's own buffer while its next commands are read, as redis-server
does. A blocking sendall would deadlock with a client that sends before it reads once the socket's
buffer is full (~200 KB on a Unix socket): Celery's result consumer SUBSCRIBEs to each task's channel
as it is sent, and reads the confirmations only at the first get(). bench/embedded_broker.py (bench/RESULTS.md
2026-12-04): 300.9 tasks/s, 0.50x Stalk's own redis-server, against 11.3 tasks/s (0.02x) on fakeredis's
stock TcpFakeServer (`--stock`).

Clients without the password cost little: a connection is admitted under the caps of
stalk.embedded.broker.admission (in all, and on those not yet authenticated), and one still not
authenticated AUTH_TIMEOUT after connecting is dropped (what it may send meanwhile: auth_gate).

If removed: the embedded broker would run fakeredis's TcpFakeServer, at the 0.02x above (and without
Stalk's AUTH gate, stalk.embedded.broker.auth_gate, or any cap on connections).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from fakeredis import FakeServer
from fakeredis._clients._sync import FakeRedisConnection
from fakeredis._clients._tcp_server import encode_reply
from fakeredis._typing import RaiseErrorTypes

from stalk.embedded.broker.admission import Admission, refuse
from stalk.embedded.broker.auth_gate import AUTH_TIMEOUT, AuthGate, ProtocolError

LOGGER = logging.getLogger(__name__)
IDLE_CHECK = 0.5  # seconds between checks of the server's shutdown flag on an idle connection
READ_SIZE = 1 << 16
MAX_UNSENT = 256 << 20  # bytes of replies a client has not read before it is dropped (redis: output buffer limits)
DRAIN_TIMEOUT = 2.0  # seconds to hand a closing client what it has not read yet
AUTH_EXPIRED = b"-ERR Protocol error: no AUTH within %d seconds\r\n" % AUTH_TIMEOUT


class Waker:
    """Wraps a fakeredis socket's `put_response`: a reply queued from another thread (a published
    message) while the connection's thread is parked in poll() writes a byte to a pipe to wake it."""

    def __init__(self, wake_fd: int) -> None:
        self._wake_fd: int | None = wake_fd
        self.parked = False

    def wrap(self, put_response: Callable[[Any], None]) -> Callable[[Any], None]:
        def put_and_wake(msg: Any) -> None:
            put_response(msg)
            fd = self._wake_fd
            if self.parked and fd is not None:
                try:
                    os.write(fd, b"\0")
                except OSError:
                    pass  # a wake-up is already pending (pipe full), or the connection is closing

        return put_and_wake

    def detach(self) -> None:
        """Never write again: the pipe is about to be closed and its fd number reused."""
        self.parked = False
        self._wake_fd = None


class FakeConnectionHandler(socketserver.BaseRequestHandler):
    """Feeds the client's bytes to a fakeredis connection and writes back what it queues, in order."""

    server: LoopbackFakeServer

    def setup(self) -> None:
        if self.request.family != socket.AF_UNIX:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = {"laddr": self.request.getsockname(), "addr": self.request.getpeername(), "fd": self.request.fileno()}
        self.gate = AuthGate(self.server.password) if self.server.password else None
        self.auth_deadline = time.monotonic() + AUTH_TIMEOUT
        if self.gate is None:
            self.server.admission.authenticated(self.request)
        # A fresh connection speaks RESP2 until the client sends HELLO, as with redis-server.
        self.client = FakeRedisConnection(server=self.server.fake_server, client_info=info, protocol=2)
        self.fake = self.client.get_socket()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = Waker(self._wake_w)
        # The patch: fakeredis's pub/sub calls put_response on each subscriber's socket; this instance's
        # wakes the connection's thread too.
        self.fake.put_response = self.wake.wrap(self.fake.put_response)  # type: ignore[method-assign,assignment]
        self.poller = select.poll()  # not select(): the Stalk process may hold more than 1024 fds
        self.poller.register(self.request, select.POLLIN)
        self.poller.register(self._wake_r, select.POLLIN)
        self._polled = select.POLLIN  # | POLLOUT while replies wait in `_unsent`
        self._unsent = bytearray()

    def handle(self) -> None:
        try:
            while not self.server.stopping.is_set():
                self._flush()
                if self._auth_expired():
                    return
                data = self._wait_for_input()
                if data is None:
                    continue
                if not data or not self._feed(data):
                    return
        except (ConnectionError, ProtocolError, OSError):
            return  # the peer went away or spoke garbage: drop it, as redis-server does

    def finish(self) -> None:
        if self._unsent:  # the replies before a QUIT, an error line
            try:
                self.request.settimeout(DRAIN_TIMEOUT)
                self.request.sendall(self._unsent)
            except OSError:
                pass
        self.wake.detach()
        self.client.disconnect()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wait_for_input(self) -> bytes | None:
        """The client's next bytes (b"" once it has closed), or None when woken for a pushed reply."""
        self.wake.parked = True
        try:
            if self._has_reply():
                return None
            ready = dict(self.poller.poll(self._poll_ms()))
        finally:
            self.wake.parked = False
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        if ready.get(self.request.fileno(), 0) & ~select.POLLOUT:  # input, or the client hung up
            return self.request.recv(READ_SIZE)
        return None

    def _auth_expired(self) -> bool:
        """A client still unauthenticated AUTH_TIMEOUT after connecting is told so (if it reads) and dropped."""
        if self.gate is None or self.gate.open or time.monotonic() < self.auth_deadline:
            return False
        refuse(self.request, AUTH_EXPIRED)
        return True

    def _poll_ms(self) -> float:
        if self.gate is None or self.gate.open:
            return IDLE_CHECK * 1000
        return max(0.0, min(IDLE_CHECK, self.auth_deadline - time.monotonic())) * 1000

    def _feed(self, data: bytes) -> bool:
        """Run what the client sent; False when the connection must close."""
        if self.gate is not None and not self.gate.open:
            reply, data, close = self.gate.feed(data)
            if reply:
                self._write(reply)
            if close:
                return False
            if self.gate.open:
                self.server.admission.authenticated(self.request)
            if not data:
                return True
        try:
            self.fake.sendall(data)  # runs every complete command now; a blocking one (BRPOP) waits here
        except ConnectionError:
            return False  # CLIENT KILL
        except Exception as exc:  # fakeredis's parser gave up on the stream: say why, then close
            self._flush()
            self._unsent += b"-ERR Protocol error: %s\r\n" % str(exc).encode()[:200]
            return False
        return True

    def _has_reply(self) -> bool:
        responses = self.fake.responses
        return responses is not None and not responses.empty()

    def _flush(self) -> None:
        """Everything fakeredis has queued for this client, in one write."""
        out = []
        while self._has_reply():
            out.append(encode_reply(self._next_reply(), self.fake._client_info.protocol_version))
        if out or self._unsent:
            self._write(b"".join(out))

    def _write(self, data: bytes) -> None:
        """Send what the socket takes now; keep the rest (after what was kept before) for POLLOUT."""
        if self._unsent:
            self._unsent += data
            with memoryview(self._unsent) as view:
                sent = self._send(view)
            del self._unsent[:sent]
        else:
            sent = self._send(data)
            self._unsent += memoryview(data)[sent:]
        if len(self._unsent) > MAX_UNSENT:
            raise ConnectionError("the client does not read its replies")
        polled = select.POLLIN | (select.POLLOUT if self._unsent else 0)
        if polled != self._polled:
            self.poller.modify(self.request, polled)
            self._polled = polled

    def _send(self, data: bytes | memoryview) -> int:
        try:
            return self.request.send(data, socket.MSG_DONTWAIT) if data else 0
        except BlockingIOError:
            return 0

    def _next_reply(self) -> Any:
        try:
            return self.client.read_response()
        except RaiseErrorTypes as exc:  # an error reply, raised the way redis-py raises it
            return exc


class LoopbackFakeServer(socketserver.ThreadingTCPServer):
    """fakeredis behind a threading TCP server: one thread per client, `password` required when set."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # listen backlog: socketserver's 5 makes a burst of worker connects wait 1 s

    def __init__(self, address: tuple[str, int], password: str | None, version: tuple[int, ...] = (7, 0)) -> None:
        self.password = password.encode() if password else b""
        self.fake_server = FakeServer(version=version, server_type="redis")
        if password:
            self.fake_server.config[b"requirepass"] = self.password
        self.stopping = threading.Event()
        self.admission = Admission()  # caps on clients, and on those not yet authenticated
        super().__init__(address, FakeConnectionHandler)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the connection's thread, or refuse it at once (over a cap: see admission)."""
        if not self.admission.admit(request):
            refuse(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.admission.release(request)  # before the socket is closed
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client's failure is logged, never printed: stderr is the panel's terminal."""
        LOGGER.debug("embedded broker: client %s failed", client_address, exc_info=True)


class UnixFakeServer(LoopbackFakeServer):
    """The same server on a Unix socket (`address` is its path): only who may open the path connects."""

    address_family = socket.AF_UNIX

    def __init__(self, path: str, password: str | None) -> None:
        super().__init__(path, password)  # type: ignore[arg-type]  # an AF_UNIX socketserver's address is a path
