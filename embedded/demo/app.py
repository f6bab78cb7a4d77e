"""The built-in demo app: the seeds' pipelines (YouTube, web pages, cache search, routing, archive-first
ingestion, plugin collection and processing, periodic upkeep), offline and deterministic.

Tasks are named `demo.*`; settings, queues and the worker layout live in embedded/demo/base.py."""

from __future__ import annotations

import time

from stalk.embedded.demo import collection, content, maintenance  # noqa: F401 - registers their tasks on `app`
from stalk.embedded.demo.base import app

__all__ = ["app"]


@app.task(name="demo.add")
def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


@app.task(name="demo.slow_add", bind=True)
def slow_add(self, x: int, y: int, seconds: float = 1.0) -> int:
    """Add two numbers after `seconds`, reporting PROGRESS every 0.1 s."""
    steps = max(1, int(seconds * 10))
    for i in range(steps):
        self.update_state(state="PROGRESS", meta={"current": i, "total": steps})
        time.sleep(seconds / steps)
    return x + y
