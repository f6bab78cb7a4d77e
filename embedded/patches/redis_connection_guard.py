"""Patches redis-py's TCP `Connection._connect` (redis/connection.py): before a connection to Stalk's own
redis-server on loopback TCP sends anything (HELLO ... AUTH carries the password), its peer must be that
redis-server process.

Why: on TCP, Stalk picks a free port and redis-server binds it later, and after a crash the port is free
during the restart back-off. Any local user who binds it first would receive the password from every
worker, beat and Stalk itself as they reconnect. A Unix socket in the 0700 data dir (the default) cannot be
squatted; this guards the `broker.listen = "tcp"` case. Every redis-py client in the process goes through
`_connect` (kombu's transport and its asynchronous connections subclass `Connection`, Celery's redis result
backend, RedBeat, Stalk's own clients), so one check covers them all.

The check: the process named by redis-server's pidfile (in the 0700 state dir, written by redis-server
itself) is the user's, and holds the server end of this very connection (psutil: its TCP connections,
local = our peer, remote = our address). A connection still in the listen backlog is not in the server's
fds yet, so the check waits for it briefly. Otherwise the socket is closed and redis-py sees a refused
connection, which kombu and Celery retry as they retry a broker that is down.

Written against redis-py 8.2.0 (pyproject.toml pins the minor): `Connection._connect()` returns the
connected socket and `host`/`port` are attributes of the connection; tests/test_upstream_canaries.py
checks both.

If removed: on TCP, a process that binds the port first receives the password (tests/test_broker_socket.py
squats the port with a real socket).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from redis import connection as redis_connection

LOOPBACK = ("127.0.0.1", "::1")
PEER_WAIT = 2.0  # seconds a new connection may stay in the server's accept queue before the check gives up
_GUARDED: dict[int, Path] = {}  # loopback port -> redis-server's pidfile
_LOCK = threading.Lock()
_original_connect = redis_connection.Connection._connect


class NotStalksRedis(OSError):
    """The server on a guarded port is not the redis-server Stalk runs: nothing was sent to it."""


def guard_port(port: int, pidfile: Path) -> None:
    """From now on, connections to 127.0.0.1:`port` in this process go only to the process in `pidfile`."""
    with _LOCK:
        _GUARDED[port] = pidfile
        redis_connection.Connection._connect = _guarded_connect  # type: ignore[method-assign]


def unguard_port(port: int) -> None:
    with _LOCK:
        _GUARDED.pop(port, None)


def _guarded_connect(self: Any) -> socket.socket:
    sock = _original_connect(self)
    pidfile = _GUARDED.get(int(self.port)) if str(self.port).isdigit() else None
    if pidfile is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    if sock.getpeername()[0] not in LOOPBACK:
        return sock  # another host's redis on the same port number: not Stalk's to check
    try:
        verify_peer(sock, pidfile)
    except BaseException:
        sock.close()
        raise
    return sock


def verify_peer(sock: socket.socket, pidfile: Path, wait: float = PEER_WAIT) -> None:
    """NotStalksRedis unless the server end of `sock` belongs to the process named in `pidfile`."""
    peer, me = sock.getpeername()[:2], sock.getsockname()[:2]
    deadline = time.monotonic() + wait
    while True:
        pid = _read_pid(pidfile)
        if pid is not None and _holds(pid, peer, me):
            return
        if time.monotonic() >= deadline:
            raise NotStalksRedis(f"the server on {peer[0]}:{peer[1]} is not Stalk's redis-server "
                                 f"(pid {pid or '?'} from {pidfile}): its password was not sent")
        time.sleep(0.01)


def _read_pid(pidfile: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(pidfile.read_text().strip())
    return None


def _holds(pid: int, peer: tuple, me: tuple) -> bool:
    """True when process `pid`, the user's own, has the TCP connection peer <-> me."""
    try:
        proc = psutil.Process(pid)
        if proc.uids().real != os.getuid():
            return False
        conns = proc.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return False
    return any(tuple(c.laddr[:2]) == tuple(peer) and c.raddr and tuple(c.raddr[:2]) == tuple(me) for c in conns)
