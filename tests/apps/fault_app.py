"""A test app whose tasks record every execution, so fault tests can count runs.

Each run is recorded twice: in the stack's own broker (db 2, survives a worker's death) and in a file
in the stack's data dir (survives the broker losing writes, as `appendfsync everysec` may)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from celery import Celery

from stalk.embedded.broker.address import redis_py_url

app = Celery("fault_app")
app.conf.task_default_queue = "faults"
RUNS_FILE = "fault-runs.log"


def _ledger() -> redis.Redis:
    """The stack's own broker, db 2: executions survive a worker's death."""
    url = os.environ.get("STALK_CHILD_BROKER_URL") or app.conf.broker_url
    return redis.Redis.from_url(redis_py_url(url, 2))


def runs_file(data_dir: str | Path) -> Path:
    return Path(data_dir) / RUNS_FILE


@app.task(name="faults.sleepy", bind=True)
def sleepy(self, seconds: float) -> str:
    """Sleep, then record that this task id ran (and whether it was a redelivery)."""
    time.sleep(seconds)
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    record(f"{self.request.id}:{int(redelivered)}")
    return self.request.id


def record(entry: str, within: float = 60.0) -> None:
    """Append to the run file, then to the run ledger, retrying while the broker restarts."""
    data_dir = os.environ.get("STALK_CHILD_DATA_DIR")
    if data_dir:  # one short O_APPEND write per line: lines of concurrent pool processes never mix
        fd = os.open(runs_file(data_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{entry}\n".encode())
        finally:
            os.close(fd)
    deadline = time.monotonic() + within
    while True:
        try:
            _ledger().rpush("runs", entry)
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@app.task(name="faults.noop", bind=True)
def noop(self, i: int) -> int:
    """Record the run, return `i`."""
    record(f"{self.request.id}:0")
    return i
