"""What beat really sent, per schedule entry, recorded as it sends: runs, last run, last task id, last error.

Celery's schedulers keep their counts where nobody else sees them in time: the default PersistentScheduler
writes its shelve at its first send, then only every `beat_sync_every` sends or 3 minutes and when it
stops, so a reader of the shelve sees a 3-second entry at "runs 0, never" for minutes. Stalk runs the beat
child itself, so the child records every send as it happens: record_beat_sends() wraps the `apply_async`
of the scheduler beat built (on Celery's public `beat_init` signal), the one call every scheduler sends
through whatever its class: Celery's Scheduler.apply_entry (PersistentScheduler, django-celery-beat's
DatabaseScheduler, which inherits it) and RedBeat's maybe_due. Control.run_beat_entry records its sends
the same way.

The store is one SQLite table in the data dir's state (`beat-runs.sqlite3`, WAL: read while beat writes),
one row per entry, each send one short upsert. Its first row for an entry starts from the scheduler's own
count (`seed`: the entry's total_run_count before the send), so runs made before Stalk recorded them still
count. A reader that finds no file, or a damaged one, sees no record (the scheduler's own counts show); a
writer that finds a damaged one moves it aside (`.corrupt-<time>`) and starts a new one. Recording never
stops beat: a failure to record is one warning in beat's log."""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stalk.embedded.paths import set_aside
from stalk.embedded.safe_files import prepare_sqlite

BUSY_TIMEOUT = 2.0  # seconds a writer or reader waits for the other's short transaction
MAX_ERROR = 500  # characters of a send's error kept
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS beat_runs (
    entry TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,       -- sends that went out (the scheduler's count before the first)
    last_run REAL,                         -- epoch seconds of the last send that went out
    last_task_id TEXT,
    last_source TEXT,                      -- 'beat' or 'run now'
    errors INTEGER NOT NULL DEFAULT 0,     -- sends that failed (the broker refused, the task is unknown...)
    last_error TEXT,
    last_error_at REAL
)
"""
SENT = """
INSERT INTO beat_runs (entry, task, runs, last_run, last_task_id, last_source) VALUES (?, ?, ? + 1, ?, ?, ?)
ON CONFLICT (entry) DO UPDATE SET task = excluded.task, runs = runs + 1, last_run = excluded.last_run,
    last_task_id = excluded.last_task_id, last_source = excluded.last_source
"""
FAILED = """
INSERT INTO beat_runs (entry, task, runs, errors, last_error, last_error_at, last_source) VALUES (?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (entry) DO UPDATE SET task = excluded.task, errors = errors + 1, last_error = excluded.last_error,
    last_error_at = excluded.last_error_at, last_source = excluded.last_source
"""
COLUMNS = "entry, task, runs, last_run, last_task_id, last_source, errors, last_error, last_error_at"

BEAT = "beat"
RUN_NOW = "run now"
log = logging.getLogger("stalk.beat")


@dataclass(frozen=True)
class EntryRuns:
    """One entry's record: what was sent, when, and the last failure."""

    entry: str
    task: str
    runs: int
    last_run: float | None = None
    last_task_id: str | None = None
    last_source: str | None = None
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def failing(self) -> bool:
        """The newest send failed."""
        return self.last_error_at is not None and (self.last_run is None or self.last_error_at >= self.last_run)


class BeatRuns:
    """The record of beat's sends, shared by the beat child (writes), Control (run now writes; reads)."""

    def __init__(self, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    def sent(self, entry: str, task: str, task_id: str | None, *, seed: int = 0, source: str = BEAT,
             at: float | None = None) -> None:
        self._write(SENT, (entry, task, max(int(seed), 0), time.time() if at is None else at, task_id, source))

    def failed(self, entry: str, task: str, error: str, *, seed: int = 0, source: str = BEAT,
               at: float | None = None) -> None:
        self._write(FAILED, (entry, task, max(int(seed), 0), error[:MAX_ERROR],
                             time.time() if at is None else at, source))

    def read(self) -> dict[str, EntryRuns]:
        """entry name -> its record; {} when nothing was recorded yet or the store cannot be read."""
        if not self.path.exists():
            return {}
        try:
            with self._connection(self.path.absolute().as_uri() + "?mode=rw", uri=True) as conn:
                rows = conn.execute(f"SELECT {COLUMNS} FROM beat_runs").fetchall()
        except sqlite3.Error as exc:  # damaged, or not written yet: the schedulers' own counts show
            log.debug("beat runs %s unreadable: %s", self.path, exc)
            return {}
        return {row[0]: EntryRuns(*row) for row in rows}

    def _write(self, statement: str, params: tuple[Any, ...]) -> None:
        try:
            self._upsert(statement, params)
        except sqlite3.DatabaseError as exc:
            if not self._damaged(exc):
                raise
            stamp = int(time.time())
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    set_aside(Path(f"{self.path}{suffix}"), stamp)
            log.warning("beat runs %s unreadable (%s): moved aside, starting a new record", self.path, exc)
            self._upsert(statement, params)

    def _upsert(self, statement: str, params: tuple[Any, ...]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        prepare_sqlite(self.path)  # no planted link followed; a new db is 0600
        with self._connection(str(self.path)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                conn.execute(SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(statement, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _damaged(exc: sqlite3.DatabaseError) -> bool:
        return type(exc) is sqlite3.DatabaseError or "malformed" in str(exc).lower()  # not a database, or torn

    @contextlib.contextmanager
    def _connection(self, target: str, uri: bool = False) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(target, timeout=self.busy_timeout, isolation_level=None, uri=uri)
        try:
            yield conn
        finally:
            conn.close()


def run_count(entry: Any) -> int:
    """The scheduler's own count of an entry's runs (ScheduleEntry.total_run_count), 0 if it has none."""
    try:
        return max(int(getattr(entry, "total_run_count", 0) or 0), 0)
    except (TypeError, ValueError):
        return 0


def record_beat_sends(runs: BeatRuns) -> None:
    """In the beat child, before beat starts: every send of the scheduler beat builds is recorded."""
    from celery.signals import beat_init

    def on_beat_init(sender: Any = None, **_kwargs: Any) -> None:
        scheduler = getattr(sender, "scheduler", None)  # celery.beat.Service.scheduler
        if scheduler is None or not callable(getattr(scheduler, "apply_async", None)):
            log.warning("[stalk] beat's scheduler has no apply_async: its sends are not counted")
            return
        watch_scheduler(scheduler, runs)

    beat_init.connect(on_beat_init, weak=False)


def watch_scheduler(scheduler: Any, runs: BeatRuns) -> None:
    """Record each send of `scheduler` (its apply_async, wrapped on the instance) in `runs`."""
    send = scheduler.apply_async

    @functools.wraps(send)
    def apply_async(entry: Any, *args: Any, **kwargs: Any) -> Any:
        seed = run_count(entry)  # before the send: RedBeat's reserve (advance=True) counts it in Redis
        try:
            result = send(entry, *args, **kwargs)
        except Exception as exc:
            _quietly(runs.failed, entry, str(exc), seed=seed)
            raise
        _quietly(runs.sent, entry, getattr(result, "id", None), seed=seed)
        return result

    scheduler.apply_async = apply_async


def _quietly(record: Any, entry: Any, detail: str | None, *, seed: int) -> None:
    try:
        record(str(entry.name), str(entry.task), detail, seed=seed)
    except Exception as exc:  # beat goes on sending: only the record of this send is lost
        log.warning("[stalk] could not record beat's send of %s: %s: %s", getattr(entry, "name", "?"),
                    type(exc).__name__, exc)
