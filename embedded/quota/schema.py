"""The ledger's SQLite file: opened in WAL mode, checked, never deleted or recreated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stalk.embedded.quota.errors import QuotaError
from stalk.embedded.safe_files import prepare_sqlite

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (
    name TEXT PRIMARY KEY,
    daily_limit INTEGER NOT NULL CHECK (daily_limit >= 0),
    priority_reserve INTEGER NOT NULL CHECK (priority_reserve BETWEEN 0 AND daily_limit),
    timezone TEXT NOT NULL,
    reset_time TEXT NOT NULL,
    costs TEXT NOT NULL DEFAULT '{}',
    refund_failed INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    quota TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    "limit" INTEGER NOT NULL,
    reserve INTEGER NOT NULL,
    PRIMARY KEY (quota, day),
    CHECK (used >= 0 AND used <= "limit"),
    CHECK (reserve BETWEEN 0 AND "limit")
);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    quota TEXT NOT NULL,
    day TEXT NOT NULL,
    units INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'ok', 'failed', 'refunded')),
    created REAL NOT NULL,
    settled REAL
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (quota, created);
CREATE TABLE IF NOT EXISTS denials (
    id INTEGER PRIMARY KEY,
    quota TEXT NOT NULL,
    day TEXT NOT NULL,
    key TEXT,
    units INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS denials_by_time ON denials (quota, at);
"""


def connect(path: Path, busy_timeout: float, wal: bool = True, durable: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit BEGIN IMMEDIATE), WAL, busy wait."""
    prepare_sqlite(path)  # no planted link followed; a new db is 0600
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, path) from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if wal:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise QuotaError(f"quota db {path}: cannot switch to WAL mode (got {mode}); "
                                 "is it on a network filesystem?")
            # FULL: a granted unit survives a power cut too (NORMAL survives only a process crash)
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path) from None
    except QuotaError:
        conn.close()
        raise
    return conn


def inspect(path: Path, busy_timeout: float) -> bool:
    """Read-only look before anything is written: refuse a file that is not SQLite (its first read
    fails), a db that is someone else's, or one from a newer Stalk (switching it to WAL would already
    change its header). True when tables must be created.

    Only SQLite opens the file: closing any other descriptor on it (a plain open() to read the magic
    header) drops every POSIX lock this process holds on it, so another process closing its connection
    takes itself for the last one and deletes the WAL under this process's open connections."""
    conn = connect(path, busy_timeout, wal=False)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise QuotaError(f"quota db {path}: holds other tables ({', '.join(sorted(tables)[:5])}), "
                             "not a Stalk quota ledger; left untouched")
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else 0
            if version > SCHEMA_VERSION:
                raise QuotaError(f"quota db {path}: written by a newer Stalk (schema {version}); "
                                 "upgrade Stalk to read it")
            return version < SCHEMA_VERSION
        return True
    except sqlite3.Error as exc:
        raise translate(exc, path) from None
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables (a no-op on an existing ledger)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise translate(exc, path) from None


def translate(exc: sqlite3.Error, path: Path) -> QuotaError:
    """One clear line for what SQLite reported."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return QuotaError(f"quota db {path}: locked by another process for too long ({text}); "
                          "try again, or find the process holding it")
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
        return QuotaError(f"quota db {path}: cannot open it ({text}); check the directory and permissions")
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in text:
        return QuotaError(f"quota db {path}: read-only ({text}); check its permissions")
    if isinstance(exc, sqlite3.IntegrityError):
        return QuotaError(f"quota db {path}: refused an inconsistent write ({text})")
    if isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in text:
        return corrupt(path, "not an SQLite database")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return corrupt(path, text)
    return QuotaError(f"quota db {path}: {text}")


def corrupt(path: Path, why: str) -> QuotaError:
    return QuotaError(f"quota db {path} is corrupt ({why}); it was left untouched: move it aside "
                      "(or restore a backup) to start a new ledger")
