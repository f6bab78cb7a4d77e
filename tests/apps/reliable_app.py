"""A test app whose task records each start and each finish in a sqlite db in the stack's data dir, so the
reliability tests count executions per task id whatever the broker kept (tests/test_faults_reliable.py)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from celery import Celery

app = Celery("reliable_app")
app.conf.task_default_queue = "reliable"
RUNS_DB = "reliable-runs.sqlite3"


def runs_db(data_dir: str | Path) -> Path:
    return Path(data_dir) / RUNS_DB


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS runs (task_id TEXT, phase TEXT, pid INTEGER, redelivered INTEGER, "
                 "at REAL)")
    return conn


def record(task_id: str, phase: str, redelivered: bool) -> None:
    data_dir = os.environ["STALK_CHILD_DATA_DIR"]
    with _connect(runs_db(data_dir)) as conn:
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                     (task_id, phase, os.getpid(), int(redelivered), time.time()))


def read_runs(data_dir: str | Path, phase: str = "done") -> list[tuple[str, int, int]]:
    """(task_id, pid, redelivered) of every run that reached `phase` ("start" or "done")."""
    path = runs_db(data_dir)
    if not path.exists():
        return []
    with _connect(path) as conn:
        return conn.execute("SELECT task_id, pid, redelivered FROM runs WHERE phase = ?", (phase,)).fetchall()


@app.task(name="reliable.run", bind=True)
def run(self, seconds: float = 0.0) -> str:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    record(self.request.id, "start", redelivered)
    time.sleep(seconds)
    record(self.request.id, "done", redelivered)
    return self.request.id
