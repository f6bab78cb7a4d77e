"""Tasks that record every execution in a SQLite file, so the soak counts runs per task id.

A run writes a `start` row before its work and a `done` row after it: a run cut short by a killed
worker leaves only `start`. The file survives any fault of the broker or the workers."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from celery import shared_task

DB_NAME = "soak-runs.sqlite3"


def runs_db() -> Path:
    return Path(os.environ.get("SOAK_DB") or Path(os.environ["STALK_CHILD_DATA_DIR"]) / DB_NAME)


def record(task_id: str, phase: str) -> None:
    for _ in range(100):
        try:
            with sqlite3.connect(runs_db(), timeout=30) as db:
                db.execute("CREATE TABLE IF NOT EXISTS runs (task_id TEXT, phase TEXT, pid INTEGER, at REAL)")
                db.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", (task_id, phase, os.getpid(), time.time()))
            return
        except sqlite3.OperationalError:
            time.sleep(0.05)


def _run(task, seconds: float) -> str:
    record(task.request.id, "start")
    time.sleep(seconds)
    record(task.request.id, "done")
    return task.request.id


@shared_task(bind=True)
def fetch(self, i: int) -> str:
    """A short call to an outside service."""
    return _run(self, 0.05)


@shared_task(bind=True)
def render(self, i: int) -> str:
    """A longer piece of work: often running when a fault hits."""
    return _run(self, 0.4)


@shared_task
def tick() -> str:
    return "tick"
