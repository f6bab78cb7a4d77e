"""A test app with a beat schedule (for beat entries and run-now) and tasks on two queues."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

app = Celery("control_app")
app.conf.task_default_queue = "ctl"
app.conf.beat_sync_every = 1  # write the schedule file after every send, so tests see run counts
app.conf.beat_schedule = {
    "tick": {"task": "ctl.add", "schedule": timedelta(seconds=1), "args": (1, 2)},
    "nightly": {"task": "ctl.add", "schedule": crontab(minute=30, hour=3), "args": (40, 2),
                "kwargs": {}, "options": {"priority": 3}},
}


@app.task(name="ctl.add")
def add(x: int, y: int) -> int:
    return x + y
