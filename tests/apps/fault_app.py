"""A test app whose tasks record every execution in Redis, so fault tests can count runs."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

app = Celery("fault_app")
app.conf.task_default_queue = "faults"


def _ledger() -> redis.Redis:
    """The stack's own broker, db 2: executions survive a worker's death."""
    url = os.environ.get("STALK_CHILD_BROKER_URL") or app.conf.broker_url
    return redis.Redis.from_url(url.rsplit("/", 1)[0] + "/2")


@app.task(name="faults.sleepy", bind=True)
def sleepy(self, seconds: float) -> str:
    """Sleep, then record that this task id ran (and whether it was a redelivery)."""
    time.sleep(seconds)
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    record(f"{self.request.id}:{int(redelivered)}")
    return self.request.id


def record(entry: str, within: float = 60.0) -> None:
    """Append to the run ledger, retrying while the broker restarts (the write must not be lost)."""
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
