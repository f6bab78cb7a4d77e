"""Task history in SQLite (WAL): batched upserts from a writer thread, reload at start, reads for the CLI."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stalk.embedded.events.records import TASK_FIELDS, TaskRecord, attempts_listed
from stalk.embedded.foreground import FOREGROUND
from stalk.embedded.safe_files import prepare_sqlite
from stalk.embedded.safe_text import MULTILINE, printable

KEEP_ROWS = 100_000  # the db keeps this many most recent tasks
COLUMNS = (*TASK_FIELDS, "attempts")  # attempts: JSON [[timestamp, worker, text], ...] (the fold's tuples)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks ({", ".join(c + (" TEXT PRIMARY KEY" if c == "task_id" else "") for c in COLUMNS)});
CREATE INDEX IF NOT EXISTS tasks_received ON tasks (received);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks (updated);
"""
UPSERT = (f"INSERT OR REPLACE INTO tasks ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")
PROGRESS_COL = COLUMNS.index("progress")
ATTEMPTS_COL = COLUMNS.index("attempts")
MAX_TIME = 32_503_680_000  # 3000-01-01: an attempt's time past it (or NaN) is read back as unknown
ID_COLUMNS = frozenset({"task_id", "parent_id", "root_id", "group_id"})  # keys: read back as written


class HistoryError(Exception):
    """The history db cannot be read (missing, corrupt, locked): one line for the user."""


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise HistoryError(f"no task history at {path} (start a stack on this data dir first)")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        prepare_sqlite(path)  # no planted link followed; a new db is 0600
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
        for column in COLUMNS:  # a db from an older Stalk: add what it lacks
            if column not in have:
                conn.execute(f"ALTER TABLE tasks ADD COLUMN {column}")
    return conn


def row_of(rec: TaskRecord) -> tuple:
    row = [getattr(rec, c) for c in COLUMNS]
    if row[PROGRESS_COL] is not None:
        row[PROGRESS_COL] = json.dumps(row[PROGRESS_COL], default=str)
    if row[ATTEMPTS_COL] is not None:
        row[ATTEMPTS_COL] = json.dumps(row[ATTEMPTS_COL], default=str)
    return tuple(row)


def record_of(row: tuple) -> TaskRecord:
    values = {column: _printable(column, value) for column, value in zip(COLUMNS, row, strict=True)}
    progress = values.get("progress")
    if progress:
        try:
            values["progress"] = json.loads(progress)
        except ValueError:
            values["progress"] = None
    values["attempts"] = attempts_of(values.get("attempts"))
    values["retries"] = values.get("retries") or 0
    values["state"] = values.get("state") or "PENDING"
    return TaskRecord(**values)


def attempts_of(text: Any) -> list[tuple] | None:
    """The attempts column read back: (timestamp, worker, text) tuples as the fold keeps them, texts made
    printable (the db is data: an older Stalk's, or edited), entries of another shape dropped."""
    try:
        listed = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(listed, list):
        return None
    attempts = [(_time(at), _text(worker), _text(reason))
                for at, worker, reason in (a for a in listed if isinstance(a, list) and len(a) == 3)]
    return attempts or None


def _time(value: Any) -> float | None:
    """A timestamp a clock can show (JSON also reads NaN, Infinity and 1e300), else None."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < MAX_TIME
    return value if ok else None


def _text(value: Any) -> str | None:
    return None if value is None else printable(str(value))


def _printable(column: str, value: Any) -> Any:
    """A text read back made printable (a db written before Stalk escaped what it records)."""
    if not isinstance(value, str) or column in ID_COLUMNS or value.isprintable():
        return value
    return printable(value, MULTILINE if column == "traceback" else "")


def escaped_row(row: tuple) -> tuple:
    """`row` as SQLite can store it: texts valid UTF-8 (a lone surrogate as its escape), other values
    that are no SQLite type (an int past 64 bits, a list) as text."""
    return tuple(value if value is None or isinstance(value, float) or (
        isinstance(value, int) and -2**63 <= value < 2**63) else
        str(value).encode("utf-8", "backslashreplace").decode("utf-8") for value in row)


def load_recent(path: Path, limit: int) -> list[TaskRecord]:
    """The most recent `limit` tasks, oldest first (the store's insertion order)."""
    conn = connect(path)
    try:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM tasks "
                            "ORDER BY COALESCE(received, sent, updated) DESC LIMIT ?", (limit,)).fetchall()
    finally:
        conn.close()
    return [record_of(r) for r in reversed(rows)]


def read_tasks(path: Path, state: str | None = None, name: str | None = None,
               limit: int = 50) -> list[dict]:
    """Rows for `stalk tasks`, newest first; HistoryError with one line on any db problem."""
    where, params = [], []
    if state:
        where.append("state = ?")
        params.append(state.upper())
    if name:
        where.append("name LIKE ?")
        params.append(f"%{name}%")
    sql = (f"SELECT {', '.join(COLUMNS)} FROM tasks {'WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY COALESCE(received, sent, updated) DESC LIMIT ?")
    try:
        conn = connect(path, readonly=True)
        try:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"cannot read task history {path}: {exc}") from None
    return [_listed(record_of(r)) for r in rows]


def _listed(rec: TaskRecord) -> dict:
    row = rec.as_dict()
    row["attempts"] = attempts_listed(rec)
    return row


class HistoryWriter:
    """Every `interval` s, takes the dirty records (via `drain`) and upserts them in one transaction."""

    def __init__(self, path: Path, drain: Callable[[], list[TaskRecord]], interval: float = 0.5,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._drain = drain
        self._interval = interval
        self._on_error = on_error or (lambda _msg: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writes = 0
        self.rows_written = 0
        self.busy_seconds = 0.0  # time spent building rows and writing them
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stalk-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _run(self) -> None:
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            self._on_error(f"task history disabled: {self.path}: {exc}")
            return
        try:
            while not self._stop.wait(self._interval):
                FOREGROUND.step_aside()
                self._flush_guarded(conn)
            self._flush_guarded(conn)
        finally:
            conn.close()

    def _flush_guarded(self, conn: sqlite3.Connection) -> None:
        """A flush whose failure, whatever it is, costs its batch and a line, never the thread."""
        try:
            self._flush(conn)
        except Exception as exc:  # the writer outlives any one batch
            self._failed(f"{type(exc).__name__}: {exc}")

    def _flush(self, conn: sqlite3.Connection) -> None:
        records = self._drain()
        if not records:
            return
        began = time.perf_counter()
        rows = [row_of(r) for r in records]
        try:
            self._write(conn, rows)
            self.rows_written += len(rows)
            self.busy_seconds += time.perf_counter() - began
            self._writes += 1
            if self._writes % 200 == 1:
                self._trim(conn)
        except sqlite3.Error as exc:
            self._failed(str(exc))

    def _write(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """The batch in one transaction; when a row cannot be bound as it is (a lone surrogate in a text,
        an int past 64 bits), the batch again with every row escaped (escaped_row)."""
        try:
            with conn:
                conn.executemany(UPSERT, rows)
        except (UnicodeEncodeError, OverflowError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            with conn:
                conn.executemany(UPSERT, [escaped_row(row) for row in rows])

    def _failed(self, message: str) -> None:
        self.failures += 1
        if self.failures in (1, 10) or self.failures % 1000 == 0:
            self._on_error(f"task history write failed ({self.failures}x): {message}")

    def _trim(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks "
                         "ORDER BY updated DESC LIMIT -1 OFFSET ?)", (KEEP_ROWS,))


def known_ids(path: Path, ids: list[str]) -> set[str]:
    """Which of `ids` the history db at `path` holds; empty when there is no readable db."""
    if not ids or not path.exists():
        return set()
    found: set[str] = set()
    try:
        conn = connect(path, readonly=True)
        try:
            for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters is far above
                chunk = ids[i:i + 500]
                rows = conn.execute(f"SELECT task_id FROM tasks WHERE task_id IN ({', '.join('?' for _ in chunk)})",
                                    chunk).fetchall()
                found.update(row[0] for row in rows)
        finally:
            conn.close()
    except (sqlite3.DatabaseError, HistoryError):
        return set()
    return found
