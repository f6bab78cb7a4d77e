"""The alerts' history: one SQLite row per firing or resolution (state/alerts.sqlite3, 0600).

It outlives the process: at start each rule takes back its last state (a rule still firing is not sent
again), and a row written but not yet handed to the outbox (`queued` 0: the process died in between)
is handed over then (the outbox ignores one it holds already). A file SQLite cannot read is moved aside
(<name>.corrupt-<time>) and a new one started: the stack starts anyway.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stalk.embedded.paths import set_aside
from stalk.embedded.safe_files import prepare_sqlite

KEEP = 10_000  # rows kept (the newest)
SIDE_FILES = ("", "-wal", "-shm", "-journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL,
    value REAL,
    threshold REAL,
    message TEXT NOT NULL,
    queued INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alert_events_rule ON alert_events (rule, id);
"""
COLUMNS = "id, rule, kind, state, at, value, threshold, message"


def history_path(state_dir: Path) -> Path:
    return state_dir / "alerts.sqlite3"


@dataclass(frozen=True)
class AlertEvent:
    """A rule fired (`state` firing) or resolved."""

    id: int
    rule: str
    kind: str
    state: str  # firing | resolved
    at: float
    value: float | None
    threshold: float | None
    message: str


class AlertHistory:
    """Thread-safe: the evaluation thread writes, the API reads."""

    def __init__(self, path: Path, log: Callable[[str], None] = lambda _line: None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "not a database" not in str(exc):
                raise
            self._db = self._replace(exc, log)

    def _open(self) -> sqlite3.Connection:
        prepare_sqlite(self.path)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("SELECT COUNT(*) FROM alert_events").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _replace(self, exc: Exception, log: Callable[[str], None]) -> sqlite3.Connection:
        stamp = int(time.time())
        aside = None
        for suffix in SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                moved = set_aside(Path(f"{self.path}{suffix}"), stamp)
                aside = aside or moved
        log(f"[stalk] alert history {self.path} is unreadable ({exc}): moved to "
            f"{aside.name if aside else '?'}, starting a new one (rules start as unknown)")
        return self._open()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def record(self, rule: str, kind: str, state: str, at: float, value: float | None, threshold: float | None,
               message: str) -> AlertEvent:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO alert_events (rule, kind, state, at, value, threshold, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rule, kind, state, at, value, threshold, message))
            event_id = int(cur.lastrowid or 0)
            self._db.execute("DELETE FROM alert_events WHERE id <= ?", (event_id - KEEP,))
        return AlertEvent(event_id, rule, kind, state, at, value, threshold, message)

    def mark_queued(self, event_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE alert_events SET queued = 1 WHERE id = ?", (event_id,))

    def unqueued(self) -> list[AlertEvent]:
        """Rows not handed to the outbox yet, oldest first."""
        return self._select("WHERE queued = 0 ORDER BY id", ())

    def last_states(self) -> dict[str, AlertEvent]:
        """Each rule's newest row."""
        return {e.rule: e for e in self._select(
            "WHERE id IN (SELECT MAX(id) FROM alert_events GROUP BY rule) ORDER BY id", ())}

    def recent(self, limit: int = 100) -> list[AlertEvent]:
        """Newest first."""
        return self._select("ORDER BY id DESC LIMIT ?", (limit,))

    def _select(self, tail: str, params: tuple) -> list[AlertEvent]:
        with self._lock:
            if self._closed:  # the stack stopped: a panel still reading sees no history
                return []
            rows = self._db.execute(f"SELECT {COLUMNS} FROM alert_events {tail}", params).fetchall()
        return [AlertEvent(*row) for row in rows]
