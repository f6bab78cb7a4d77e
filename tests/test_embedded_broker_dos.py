"""The embedded broker against clients that never authenticate (issue #26, finding 1): whatever they send
or hold open, they cost a bounded amount of parsing, memory and threads, and are dropped; authenticated
clients keep being served, and new ones can still connect."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stalk.embedded.broker.admission import (
    FDS_KEPT,
    FDS_PER_CLIENT,
    MAX_UNAUTHENTICATED,
    REFUSED,
    Admission,
    client_cap,
)
from stalk.embedded.broker.auth_gate import (
    AUTH_TIMEOUT,
    MAX_COMMANDS,
    MAX_PENDING,
    NOAUTH,
    AuthGate,
    encode_command,
    parse_command,
)
from stalk.embedded.broker.fake_server import EmbeddedRedisServer

from .conftest import SERVER_PASSWORD as PASSWORD
from .conftest import wait_until

pytestmark = pytest.mark.procs

AUTH = encode_command([b"AUTH", PASSWORD.encode()])


@pytest.fixture(params=["tcp", "unix"])
def listener(request) -> Iterator[EmbeddedRedisServer]:
    """The embedded broker alone, on loopback TCP and on a Unix socket (one handler serves both)."""
    with tempfile.TemporaryDirectory(prefix="stalk-dos-") as tmp:
        srv = EmbeddedRedisServer(0 if request.param == "tcp" else Path(tmp) / "broker.sock", PASSWORD)
        srv.start()
        yield srv
        srv.stop()


def connect(server, timeout: float = 10.0) -> socket.socket:
    """A bare socket to the server, whether it listens on TCP or on a Unix socket."""
    address = server._server.server_address
    family = socket.AF_UNIX if isinstance(address, str | bytes) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.connect(address)  # blocking: a Unix socket's full backlog makes a connect with a timeout fail at once
    sock.settimeout(timeout)
    return sock


def authenticated(server) -> socket.socket:
    sock = connect(server)
    sock.sendall(AUTH)
    assert sock.recv(100) == b"+OK\r\n"
    return sock


def pings(sock: socket.socket) -> bool:
    sock.sendall(encode_command([b"PING"]))  # fakeredis itself reads no inline commands
    return sock.recv(100) == b"+PONG\r\n"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (TimeoutError if it keeps the connection open). A server
    that closes before it has read all the client sent resets the connection: that ends it too."""
    got = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 16):
            got += chunk
    return got


def handler_threads() -> int:
    """Threads serving a connection (socketserver's ThreadingMixIn names them after their target)."""
    return sum("process_request_thread" in t.name for t in threading.enumerate())


# -- parsing: linear, bounded -----------------------------------------------------------------------

class CountingBuffer(bytearray):
    """Counts the bytes that slicing it copies."""

    copied = 0

    def __getitem__(self, key):  # type: ignore[override]
        item = super().__getitem__(key)
        if isinstance(key, slice):
            CountingBuffer.copied += len(item)
        return item


def test_parsing_copies_each_request_once_not_the_rest_of_the_buffer():
    requests = [encode_command([b"PING"]) for _ in range(2000)] + [b"PING inline\r\n"] * 2000
    buf, pos, seen = CountingBuffer(b"".join(requests)), 0, 0
    CountingBuffer.copied = 0
    while pos < len(buf):
        fields, pos = parse_command(buf, pos)
        assert fields is not None
        seen += 1
    assert seen == 4000
    assert CountingBuffer.copied <= 2 * len(buf)  # copying the rest per request: ~len(buf) * 4000 / 2


def test_a_pipelined_flood_of_unauthenticated_commands_is_cut_off():
    """Thousands of commands in one go get a bounded number of NOAUTH replies, then an error and a close."""
    gate = AuthGate(PASSWORD.encode())
    reply, forward, close = gate.feed(b"PING\r\n" * 30_000)
    assert close and forward == b""
    assert reply.count(NOAUTH) == MAX_COMMANDS
    assert reply.endswith(b"\r\n") and reply.rsplit(b"\r\n", 2)[-2].startswith(b"-ERR")


def test_blank_lines_count_as_commands():
    gate = AuthGate(PASSWORD.encode())
    reply, _forward, close = gate.feed(b"\n" * 10_000)
    assert close and reply.startswith(b"-ERR")


def test_the_pre_auth_buffer_is_bounded_and_the_client_told_why(server):
    with connect(server) as sock:
        sock.sendall(b"GET " + b"x" * (MAX_PENDING + 1024))  # one inline request that never ends
        assert read_until_closed(sock).startswith(b"-ERR Protocol error")


@pytest.mark.parametrize("request_head", [b"*1\r\n$100000\r\n", b"*1000\r\n", b"*1\r\n$" + b"9" * 40])
def test_unauthenticated_requests_may_not_announce_big_ones(server, request_head):
    """As redis-server: before AUTH, at most 10 fields of at most 16 KiB each (and no endless length line)."""
    with connect(server) as sock:
        sock.sendall(request_head)
        assert read_until_closed(sock).startswith(b"-ERR Protocol error")


def test_a_pipelined_flood_over_a_socket_gets_bounded_replies_then_a_close(listener):
    with connect(listener, timeout=20) as sock:
        sender = threading.Thread(target=lambda: _send_quietly(sock, b"PING\r\n" * 40_000))
        sender.start()
        got = read_until_closed(sock)
        sender.join(20)
    # The server closes with most of the flood unread: the reset may cut its last replies off.
    assert got.count(NOAUTH) <= MAX_COMMANDS and len(got) <= MAX_COMMANDS * len(NOAUTH) + 100
    with authenticated(listener) as other:
        assert pings(other)


def _send_quietly(sock: socket.socket, payload: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(payload)


# -- time: unauthenticated clients are dropped, authenticated ones kept --------------------------------

def test_clients_still_unauthenticated_after_the_timeout_are_dropped(listener):
    with authenticated(listener) as kept, connect(listener, timeout=AUTH_TIMEOUT + 20) as idle, \
            connect(listener, timeout=AUTH_TIMEOUT + 20) as trickling:
        trickle = threading.Event()

        def send_slowly() -> None:  # a byte at a time of a request that would be valid
            for byte in AUTH[:-1]:
                if trickle.wait(0.2):
                    return
                _send_quietly(trickling, bytes([byte]))

        thread = threading.Thread(target=send_slowly)
        thread.start()
        try:
            assert read_until_closed(idle).startswith(b"-ERR")
            assert read_until_closed(trickling).startswith(b"-ERR")
        finally:
            trickle.set()
            thread.join(10)
        assert pings(kept)  # older than the timeout, but authenticated


# -- connections: capped, and the unauthenticated ones cannot crowd out the rest ----------------------

def test_a_flood_of_idle_connections_holds_a_bounded_number_of_threads(listener):
    idle = [connect(listener) for _ in range(4 * MAX_UNAUTHENTICATED + 50)]
    try:
        with authenticated(listener) as late:  # accepted after every idle one: all of them were seen
            assert pings(late)
            wait_until(lambda: handler_threads() <= 2 * MAX_UNAUTHENTICATED + 1, timeout=10)
        idle[0].settimeout(5)
        assert read_until_closed(idle[0]) == b""  # the oldest was evicted for a newer one
        assert listener._server.admission.counts().evicted >= 2 * MAX_UNAUTHENTICATED
    finally:
        for sock in idle:
            sock.close()


def test_the_cap_leaves_descriptors_for_the_rest_of_the_process():
    """Under a common soft limit of 1,024 descriptors, the server refuses clients before it runs out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        cap = client_cap()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert cap * FDS_PER_CLIENT + FDS_KEPT <= 1024 and cap > 2 * MAX_UNAUTHENTICATED


def test_excess_connections_are_refused_at_once_and_counted(server):
    server._server.admission = Admission(max_clients=4, max_unauthenticated=2)
    clients = [authenticated(server) for _ in range(4)]
    try:
        with connect(server) as refused:
            assert read_until_closed(refused) == REFUSED
        assert server._server.admission.counts().refused == 1
        assert all(pings(c) for c in clients)
        clients.pop().close()  # a slot frees once the server has seen the close
        wait_until(lambda: server._server.admission.counts().authenticated == 3, timeout=10)
        clients.append(authenticated(server))
        assert pings(clients[-1])
    finally:
        for sock in clients:
            sock.close()


def test_unauthenticated_connections_never_take_the_slots_of_authenticated_ones(server):
    server._server.admission = Admission(max_clients=8, max_unauthenticated=2)
    clients = [authenticated(server) for _ in range(3)]
    idle = [connect(server) for _ in range(20)]
    try:
        clients.append(authenticated(server))  # a new client still gets in, evicting the oldest idle one
        assert all(pings(c) for c in clients)
        counts = server._server.admission.counts()
        assert counts.evicted >= 18 and counts.refused == 0
    finally:
        for sock in clients + idle:
            sock.close()


# -- the whole stack under a flood ------------------------------------------------------------------

FLOOD = Path(__file__).parent / "apps" / "broker_flood.py"
RSS_GROWTH_BOUND = 200 << 20  # bytes (the issue saw +1.1 GB with 1,000 slow connections, a thread each)
THREADS_ABOVE_CALM = 2 * MAX_UNAUTHENTICATED + 40  # the unauthenticated ones' threads, and room for real clients
IDLE = 1000


class Peak:
    """The highest RSS and thread count of this process (where the Stack and its broker run), sampled."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.rss, self.threads = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-peak", daemon=True)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.rss = max(self.rss, self.me.memory_info().rss)
            self.threads = max(self.threads, self.me.num_threads())


def flood_argv(stack) -> list[str]:
    address = stack._broker_handle._server.server_address
    where = ["--unix", address] if isinstance(address, str) else ["--tcp", f"{address[0]}:{address[1]}"]
    return [sys.executable, str(FLOOD), *where, "--idle", str(IDLE), "--garbage", "100"]


@pytest.mark.slow
@pytest.mark.parametrize("listen", ["tcp", "unix"])
def test_a_flood_of_clients_without_the_password_leaves_the_stack_working(running_stack, listen):
    """The issue's "done when": 1,000 idle and 100 garbage-sending connections (dropped ones opened again)
    while 1,000 tasks run on real workers: all finish, memory and threads stay bounded, the supervisor lives.
    On TCP (`listen = "tcp"`) another user could connect; on the Unix socket only the user."""
    stack = running_stack(broker={"mode": "embedded", "listen": listen})
    assert [r.get(timeout=60) for r in [stack.app.send_task("demo.add", (i, i)) for i in range(50)]] == \
        [2 * i for i in range(50)]
    me = psutil.Process()
    calm_rss, calm_threads = me.memory_info().rss, me.num_threads()
    flood = subprocess.Popen(flood_argv(stack), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with Peak() as peak:
            assert flood.stdout is not None
            idle = int(flood.stdout.readline().split()[1])  # fewer under a hard limit on descriptors too low
            if idle < IDLE:
                warnings.warn(f"the descriptor limit allows {idle} idle connections, not {IDLE}", stacklevel=1)
            results = [stack.app.send_task("demo.add", (i, i)) for i in range(1000)]
            assert [r.get(timeout=300) for r in results] == [2 * i for i in range(1000)]
    finally:
        try:
            out, _ = flood.communicate(timeout=30)  # closing its stdin stops it
        except subprocess.TimeoutExpired:
            flood.kill()
            raise
    counts = json.loads(out.splitlines()[-1])
    assert counts["opened"] >= idle + 100 and counts["dropped"] > 100  # it kept the server busy
    assert stack._broker_handle._server.admission.counts().evicted > 100
    assert peak.threads <= calm_threads + THREADS_ABOVE_CALM, (peak.threads, calm_threads)
    assert peak.rss <= calm_rss + RSS_GROWTH_BOUND, (peak.rss, calm_rss)
    assert stack.supervisor.alive
    assert all(p.state.up for p in stack.processes())
