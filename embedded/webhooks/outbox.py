"""The webhook outbox: one SQLite row per notification to send (state/webhooks.sqlite3, WAL).

A row is written when a task reaches a configured state (one per hook, task, state and attempt: the
UNIQUE key makes enqueuing twice harmless) and acknowledged (`acked_at`) once its receiver answered 2xx;
an acknowledged row is never handed out again. Pending rows outlive the process: the next start sends them.
Rows of one task to one hook go out in order: only a task's oldest pending row is ever due.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stalk.embedded.safe_files import prepare_sqlite

KEEP_ACKED = 10_000  # acknowledged rows kept (the newest) for `stalk webhooks` and the API

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook TEXT NOT NULL,
    task_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt_key TEXT NOT NULL DEFAULT '',
    name TEXT,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    last_try REAL,
    last_status INTEGER,
    last_error TEXT,
    acked_at REAL,
    UNIQUE (hook, task_id, state, attempt_key)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (hook, task_id, id) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_ids ON outbox (id) WHERE acked_at IS NULL;
"""

COLUMNS = ("id", "hook", "task_id", "state", "name", "payload", "created", "attempts", "next_at", "last_try",
           "last_status", "last_error", "acked_at")


def outbox_path(state_dir: Path) -> Path:
    return state_dir / "webhooks.sqlite3"


@dataclass(frozen=True)
class Delivery:
    """One notification and how its delivery went."""

    id: int
    hook: str
    task_id: str
    state: str
    name: str | None
    payload: str  # the JSON body, without the delivery id (added when sent)
    created: float
    attempts: int
    next_at: float
    last_try: float | None
    last_status: int | None
    last_error: str | None
    acked_at: float | None

    @property
    def status(self) -> str:
        """delivered, failing (tried, not acknowledged) or pending (not tried yet)."""
        if self.acked_at is not None:
            return "delivered"
        return "failing" if self.attempts else "pending"


@dataclass(frozen=True)
class Entry:
    """A notification to enqueue."""

    hook: str
    task_id: str
    state: str
    attempt_key: str
    name: str | None
    payload: str


class Outbox:
    """Thread-safe (one connection, one lock): the events notifier enqueues, the delivery thread takes and
    marks, the API lists and retries."""

    def __init__(self, path: Path, create: bool = True) -> None:
        if create:
            prepare_sqlite(path)
        elif not path.exists():
            raise FileNotFoundError(path)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if create:
                self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enqueue(self, entries: Iterable[Entry]) -> int:
        """One transaction for the batch; rows already there (same hook, task, state, attempt) are kept.
        Returns how many were new."""
        rows = [(e.hook, e.task_id, e.state, e.attempt_key, e.name, e.payload, time.time()) for e in entries]
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO outbox (hook, task_id, state, attempt_key, name, payload, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def due(self, hook: str, now: float, limit: int = 200) -> list[Delivery]:
        """`hook`'s pending rows that may be sent now: each the oldest pending row of its task. Per hook: a
        hook that is down, its backlog first in the table, must not hold up another's rows."""
        return self._select(
            "WHERE o.acked_at IS NULL AND o.hook = ? AND o.next_at <= ? AND o.id = (SELECT MIN(p.id) FROM outbox p "
            "WHERE p.acked_at IS NULL AND p.hook = o.hook AND p.task_id = o.task_id) ORDER BY o.id LIMIT ?",
            (hook, now, limit))

    def acknowledge(self, delivery_id: int, status: int) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("UPDATE outbox SET acked_at = ?, last_try = ?, last_status = ?, attempts = attempts + 1, "
                             "last_error = NULL WHERE id = ? AND acked_at IS NULL", (now, now, status, delivery_id))

    def failed(self, delivery_id: int, status: int | None, error: str, next_at: float) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_try = ?, last_status = ?, "
                             "last_error = ?, next_at = ? WHERE id = ? AND acked_at IS NULL",
                             (time.time(), status, error[:500], next_at, delivery_id))

    def retry_now(self, delivery_id: int) -> Delivery | None:
        """Make a pending row due at once (None: no such row). An acknowledged row stays as it is."""
        with self._lock:
            self._db.execute("UPDATE outbox SET next_at = 0 WHERE id = ? AND acked_at IS NULL", (delivery_id,))
        return self.get(delivery_id)

    def get(self, delivery_id: int) -> Delivery | None:
        found = self._select("WHERE o.id = ?", (delivery_id,))
        return found[0] if found else None

    def recent(self, limit: int = 100, failures: bool = False, hook: str | None = None) -> list[Delivery]:
        """Newest first; `failures`: only unacknowledged rows that were tried."""
        where = ["1"]
        params: list[object] = []
        if failures:
            where.append("o.acked_at IS NULL AND o.attempts > 0")
        if hook is not None:
            where.append("o.hook = ?")
            params.append(hook)
        return self._select(f"WHERE {' AND '.join(where)} ORDER BY o.id DESC LIMIT ?", (*params, limit))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per hook: delivered, pending (never tried) and failing (tried, not acknowledged)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT hook, SUM(acked_at IS NOT NULL), SUM(acked_at IS NULL AND attempts = 0), "
                "SUM(acked_at IS NULL AND attempts > 0) FROM outbox GROUP BY hook").fetchall()
        return {hook: {"delivered": d or 0, "pending": p or 0, "failing": f or 0} for hook, d, p, f in rows}

    def prune(self, keep: int = KEEP_ACKED) -> int:
        """Drop acknowledged rows beyond the newest `keep`."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE acked_at IS NOT NULL AND id < (SELECT id FROM outbox WHERE acked_at "
                "IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?)", (keep,))
            return cur.rowcount

    def _select(self, tail: str, params: tuple) -> list[Delivery]:
        columns = ", ".join(f"o.{c}" for c in COLUMNS)
        with self._lock:
            rows = self._db.execute(f"SELECT {columns} FROM outbox o {tail}", params).fetchall()
        return [Delivery(*row) for row in rows]
