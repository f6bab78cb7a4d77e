"""QuotaLedger: atomic, idempotent unit reservations shared by every process of a stack (one SQLite file)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path

from stalk.embedded.quota import clock
from stalk.embedded.quota.errors import QuotaError, QuotaExhausted
from stalk.embedded.quota.schema import connect, inspect, migrate, translate
from stalk.embedded.quota.spec import QuotaSpec, QuotaStatus, RequestRow, Reservation
from stalk.embedded.quota.stats import build_status, history_rows, request_rows

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction before QuotaError


class QuotaLedger:
    """`reserve()` grants units atomically across processes: BEGIN IMMEDIATE serialises writers and a
    conditional UPDATE refuses a grant that would pass the cap, so concurrent callers never over-grant
    (a check-then-consume would). Each key (task id) is charged at most once."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True,
                 busy_timeout: float = BUSY_TIMEOUT, durable: bool = True) -> None:
        """`durable=False` skips the fsync per grant: survives a process crash, not a power cut."""
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.durable = durable
        self._local = threading.local()
        self._all: list[tuple[int, weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        fresh = True
        if self.path.exists():
            fresh = inspect(self.path, busy_timeout)
        elif not create:
            raise QuotaError(f"no quota db at {self.path} (no quota has been defined on this stack)")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise QuotaError(f"quota db {self.path}: cannot create its directory: {exc}") from None
        conn = self._conn()
        if fresh:
            migrate(conn, self.path)

    # -- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """One connection per thread and process (a forked worker child opens its own). Connections of
        threads that ended are closed here, so short-lived UI worker threads do not leak file handles."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = connect(self.path, self.busy_timeout, durable=self.durable)
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._all_lock:
            self._all = [entry for entry in self._all if _keep(entry)]
            self._all.append((os.getpid(), weakref.ref(threading.current_thread()), conn))
        return conn

    def close(self) -> None:
        """Close this process's connections (a forked child never closes its parent's)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for pid, _thread, conn in conns:
            if pid == os.getpid():
                with suppress(sqlite3.Error):
                    conn.close()
        self._local = threading.local()

    def __enter__(self) -> QuotaLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the db's write lock from its first statement."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, self.path) from None
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read snapshot (WAL readers never wait for the writer)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from None

    # -- quotas -------------------------------------------------------------------------------

    def define(self, spec: QuotaSpec) -> None:
        """Create or update a quota. Today's row takes the new limit/reserve (never below what is used)."""
        if not isinstance(spec, QuotaSpec):
            raise QuotaError(f"define() takes a QuotaSpec, got {type(spec).__name__}")
        now = clock.utcnow()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO quotas (name, daily_limit, priority_reserve, timezone, reset_time, costs,"
                " refund_failed, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " daily_limit = excluded.daily_limit, priority_reserve = excluded.priority_reserve,"
                " timezone = excluded.timezone, reset_time = excluded.reset_time, costs = excluded.costs,"
                " refund_failed = excluded.refund_failed, updated = excluded.updated",
                (spec.name, spec.daily_limit, spec.priority_reserve, spec.timezone, spec.reset_time,
                 spec.costs_json(), int(spec.refund_failed), now.timestamp()))
            day = clock.quota_day(now, spec.reset, spec.zone).isoformat()
            conn.execute('UPDATE usage SET "limit" = MAX(?, used), reserve = ? WHERE quota = ? AND day = ?',
                         (spec.daily_limit, spec.priority_reserve, spec.name, day))

    def quotas(self) -> list[QuotaSpec]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM quotas ORDER BY name").fetchall()
        return [self._spec_of(row) for row in rows]

    def spec(self, name: str) -> QuotaSpec:
        with self._read() as conn:
            return self._load_spec(conn, name)

    # -- reservations -------------------------------------------------------------------------

    def reserve(self, name: str, units: int | str, key: str, priority: bool = False) -> Reservation:
        """Grant `units` (or the cost of the call named `units`) to `key`, or raise QuotaExhausted.

        The same key always gets its first reservation back, uncharged (`charged=False`): a redelivered
        task is never charged twice. A refunded key is charged again (the call is being made again).
        Non-priority calls stop at limit - priority_reserve; priority calls may use the whole limit."""
        if not isinstance(key, str) or not key:
            raise QuotaError(f"quota {name!r}: a reservation needs a non-empty key (the task id), got {key!r}")
        with self._write() as conn:
            # stamped under the write lock: grants and denials are in the order they were decided (a time
            # read before waiting for the lock made a denial look older than the grant before it, and the
            # quota not exhausted: stats._refused)
            now = clock.utcnow()
            spec = self._load_spec(conn, name)
            n = spec.cost(units)
            cap = spec.daily_limit if priority else spec.daily_limit - spec.priority_reserve
            if n > cap:
                kind = "priority" if priority else "non-priority"
                raise QuotaError(f"quota {name!r}: a {n}-unit call can never fit ({kind} calls get at most "
                                 f"{cap} units a day)")
            row = conn.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
            if row is not None and row["quota"] != name:
                raise QuotaError(f"key {key!r} already holds a reservation on quota {row['quota']!r}; "
                                 f"use its own key for {name!r} (e.g. '{key}#{name}')")
            if row is not None and row["state"] != "refunded":
                return _reservation(row, charged=False)
            day = clock.quota_day(now, spec.reset, spec.zone).isoformat()
            self._ensure_day(conn, spec, day)
            column = '"limit"' if priority else '"limit" - reserve'
            granted = conn.execute(
                f"UPDATE usage SET used = used + ? WHERE quota = ? AND day = ? AND used + ? <= {column}",
                (n, name, day, n)).rowcount == 1
            if granted:
                conn.execute(
                    "INSERT OR REPLACE INTO requests (key, quota, day, units, priority, state, created, settled)"
                    " VALUES (?, ?, ?, ?, ?, 'reserved', ?, NULL)",
                    (key, name, day, n, int(priority), now.timestamp()))
            else:
                conn.execute("INSERT INTO denials (quota, day, key, units, priority, at) VALUES (?, ?, ?, ?, ?, ?)",
                             (name, day, key, n, int(priority), now.timestamp()))
        if not granted:
            raise QuotaExhausted(name, clock.resets_at(now, spec.reset, spec.zone), n, priority)
        return Reservation(key=key, quota=name, units=n, priority=priority, day=date.fromisoformat(day),
                           state="reserved", created=now)

    def settle(self, key: str, ok: bool) -> Reservation:
        """Mark the call done. A failed call's units go back only when the quota's spec says so.
        Settling twice changes nothing (a redelivered task settles again)."""
        with self._write() as conn:
            now = clock.utcnow()
            row = conn.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise QuotaError(f"no reservation with key {key!r} to settle")
            if row["state"] != "reserved":
                return _reservation(row, charged=False)
            state = "ok"
            if not ok:
                refund = self._load_spec(conn, row["quota"]).refund_failed
                state = "refunded" if refund else "failed"
                if refund:
                    conn.execute("UPDATE usage SET used = used - ? WHERE quota = ? AND day = ?",
                                 (row["units"], row["quota"], row["day"]))
            conn.execute("UPDATE requests SET state = ?, settled = ? WHERE key = ?",
                         (state, now.timestamp(), key))
            row = conn.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
        return _reservation(row, charged=False)

    def reservation(self, key: str) -> Reservation | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM requests WHERE key = ?", (key,)).fetchone()
        return _reservation(row, charged=False) if row else None

    # -- what a quota screen draws ------------------------------------------------------------

    def status(self, name: str) -> QuotaStatus:
        now = clock.utcnow()
        with self._read() as conn:
            spec = self._load_spec(conn, name)
            return build_status(conn, spec, now)

    def statuses(self) -> list[QuotaStatus]:
        now = clock.utcnow()
        with self._read() as conn:
            specs = [self._spec_of(r) for r in conn.execute("SELECT * FROM quotas ORDER BY name")]
            return [build_status(conn, spec, now) for spec in specs]

    def requests(self, name: str, limit: int = 100) -> list[RequestRow]:
        """The request log, newest first: grants with their settle state, and denials."""
        with self._read() as conn:
            self._load_spec(conn, name)
            return request_rows(conn, name, limit)

    def history(self, name: str, days: int = 14) -> list[tuple[date, int]]:
        """Units used per quota-day, the last `days` days up to today, oldest first (0 for idle days)."""
        now = clock.utcnow()
        with self._read() as conn:
            spec = self._load_spec(conn, name)
            return history_rows(conn, spec, now, days)

    def check(self) -> list[str]:
        """SQLite's quick_check: [] when the file is sound, else what it found."""
        with self._read() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows

    # -- internals ----------------------------------------------------------------------------

    def _load_spec(self, conn: sqlite3.Connection, name: str) -> QuotaSpec:
        row = conn.execute("SELECT * FROM quotas WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM quotas ORDER BY name")]
            raise QuotaError(f"unknown quota {name!r}; defined: {', '.join(known) or 'none'}")
        return self._spec_of(row)

    def _spec_of(self, row: sqlite3.Row) -> QuotaSpec:
        try:
            costs = json.loads(row["costs"])
        except ValueError:
            raise QuotaError(f"quota db {self.path}: quota {row['name']!r} has unreadable costs") from None
        return QuotaSpec(name=row["name"], daily_limit=row["daily_limit"], priority_reserve=row["priority_reserve"],
                         timezone=row["timezone"], reset_time=row["reset_time"], costs=costs,
                         refund_failed=bool(row["refund_failed"]))

    @staticmethod
    def _ensure_day(conn: sqlite3.Connection, spec: QuotaSpec, day: str) -> None:
        conn.execute('INSERT OR IGNORE INTO usage (quota, day, used, "limit", reserve) VALUES (?, ?, 0, ?, ?)',
                     (spec.name, day, spec.daily_limit, spec.priority_reserve))


def _keep(entry: tuple[int, weakref.ref[threading.Thread], sqlite3.Connection]) -> bool:
    """False (and closed) for a connection whose thread has ended in this process."""
    pid, thread_ref, conn = entry
    thread = thread_ref()
    if pid != os.getpid() or (thread is not None and thread.is_alive()):
        return True
    with suppress(sqlite3.Error):
        conn.close()
    return False


def _reservation(row: sqlite3.Row, charged: bool) -> Reservation:
    return Reservation(key=row["key"], quota=row["quota"], units=row["units"], priority=bool(row["priority"]),
                       day=date.fromisoformat(row["day"]), state=row["state"],
                       created=datetime.fromtimestamp(row["created"], UTC),
                       settled=datetime.fromtimestamp(row["settled"], UTC) if row["settled"] else None,
                       charged=charged)

