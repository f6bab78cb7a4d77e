"""A test app with metered tasks: each run is recorded in Redis so tests can count runs against charges."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from stalk.embedded.broker.address import redis_py_url
from stalk.embedded.quota import MeteredTask, metered, retry_priority_at_reset

app = Celery("quota_app")
app.conf.task_default_queue = "quota"
app.conf.stalk_quotas = {
    "api": {"daily_limit": 50, "priority_reserve": 10, "timezone": "America/Los_Angeles",
            "costs": {"list": 1, "search": 5}},
}


def record(entry: str) -> None:
    """The stack's own broker, db 2: runs survive a worker's death."""
    url = os.environ.get("STALK_CHILD_BROKER_URL") or app.conf.broker_url
    redis.Redis.from_url(redis_py_url(url, 2)).rpush("quota-runs", entry)


@app.task(name="quota.search", bind=True)
@metered("api", units="search", on_exhausted=retry_priority_at_reset)
def search(self, query: str, seconds: float = 0.0, priority: bool = False) -> str:
    """A 5-unit call; a priority call that finds the quota spent retries when it resets."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    record(f"{self.request.id}:{int(redelivered)}:start")
    time.sleep(seconds)
    record(f"{self.request.id}:{int(redelivered)}:done")
    return query


@app.task(name="quota.lookup", bind=True, base=MeteredTask, quota="api", units="list")
def lookup(self, item: str) -> str:
    """A 1-unit call metered by the base class."""
    return item
