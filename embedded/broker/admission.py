"""How many clients the embedded broker serves at once (each on a thread of its own).

At most `max_clients` connections in all: one more is refused at once, with redis-server's error line.
Of those, at most `max_unauthenticated` may still be waiting to authenticate: a new connection beyond
that evicts the oldest one still waiting. So connections that never authenticate hold a bounded
number of threads, and cannot lock a real client out either: it authenticates within a round trip of
connecting, long before it becomes the oldest. Authenticated connections are never evicted.

An evicted connection is shut down at once but holds its thread until that thread has seen it; while
as many as `max_unauthenticated` are still on their way out, accepting waits for one to finish (up to
ADMIT_WAIT, then refuses): a flood is accepted at the pace its threads end, the clients behind it wait in
the listen backlog rather than being refused. Threads that serve unauthenticated clients are thus at most
twice `max_unauthenticated`.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from dataclasses import dataclass

MAX_CLIENTS = 1024
MAX_UNAUTHENTICATED = 32
REFUSED = b"-ERR max number of clients reached\r\n"
FDS_PER_CLIENT = 3  # its socket and the two ends of its wake-up pipe
FDS_KEPT = 256  # for the rest of the Stalk process (logs, the children's pipes, its own clients)
ADMIT_WAIT = 1.0  # seconds the accepting thread waits for evicted connections' threads to end


def client_cap() -> int:
    """MAX_CLIENTS, or fewer when the descriptor limit (often 1,024) would run out first: the cap must
    refuse a client before the process is out of descriptors (psutil, pipes and logs need them too)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CLIENTS
    return max(2 * MAX_UNAUTHENTICATED + 16, min(MAX_CLIENTS, (soft - FDS_KEPT) // FDS_PER_CLIENT))


@dataclass(frozen=True)
class AdmissionCounts:
    waiting: int  # connected, not yet authenticated
    evicting: int  # evicted, their threads not yet done
    authenticated: int
    refused: int  # since start: closed at once, over a cap
    evicted: int  # since start: the oldest unauthenticated, for a newer connection


class Admission:
    """Which connections may be served. Called from the accepting thread and each connection's thread.

    A socket is shut down only while it is registered here, under the lock, and it is released (under
    the lock) before the server closes it: eviction never touches a closed, reused descriptor."""

    def __init__(self, max_clients: int | None = None, max_unauthenticated: int = MAX_UNAUTHENTICATED) -> None:
        self.max_clients = max_clients if max_clients is not None else client_cap()
        self.max_unauthenticated = max_unauthenticated
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._waiting: dict[socket.socket, None] = {}  # oldest first
        self._evicting: set[socket.socket] = set()
        self._authenticated: set[socket.socket] = set()
        self._refused = 0
        self._evicted = 0

    def admit(self, conn: socket.socket) -> bool:
        """Register a new connection, evicting the oldest waiting one if need be; False: refuse it."""
        with self._lock:
            if not self._await_evicted():
                self._refused += 1
                return False
            total = len(self._waiting) + len(self._evicting) + len(self._authenticated)
            if total >= self.max_clients:
                self._refused += 1
                return False
            if len(self._waiting) >= self.max_unauthenticated:
                self._evict(next(iter(self._waiting)))
            self._waiting[conn] = None
            return True

    def _await_evicted(self) -> bool:
        """Under the lock: wait until a waiting connection may be evicted; False after ADMIT_WAIT."""
        deadline = time.monotonic() + ADMIT_WAIT
        while len(self._waiting) >= self.max_unauthenticated and len(self._evicting) >= self.max_unauthenticated:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._released.wait(left)
        return True

    def authenticated(self, conn: socket.socket) -> None:
        """`conn` proved it knows the password (unless it was evicted meanwhile: then it is on its way out)."""
        with self._lock:
            if conn in self._waiting:
                del self._waiting[conn]
                self._authenticated.add(conn)

    def release(self, conn: socket.socket) -> None:
        """`conn` is done (its thread has finished with it): forget it, before it is closed."""
        with self._lock:
            self._waiting.pop(conn, None)
            self._evicting.discard(conn)
            self._authenticated.discard(conn)
            self._released.notify_all()

    def counts(self) -> AdmissionCounts:
        with self._lock:
            return AdmissionCounts(len(self._waiting), len(self._evicting), len(self._authenticated),
                                   self._refused, self._evicted)

    def _evict(self, conn: socket.socket) -> None:
        del self._waiting[conn]
        self._evicting.add(conn)
        self._evicted += 1
        try:
            conn.shutdown(socket.SHUT_RDWR)  # its thread wakes from poll() or recv() and ends
        except OSError:
            pass  # already disconnected: its thread is ending anyway


def refuse(conn: socket.socket, why: bytes = REFUSED) -> None:
    """Tell a client why it is dropped, without ever blocking (it may not read)."""
    try:
        conn.send(why, socket.MSG_DONTWAIT)
    except OSError:
        pass
