"""Placeholder demo app: two tasks on two queues (the full seeds' pipelines come next)."""

from __future__ import annotations

import time

from celery import Celery

app = Celery("stalk_demo")
app.conf.task_routes = {"demo.slow_add": {"queue": "slow"}}
app.conf.task_default_queue = "default"


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
