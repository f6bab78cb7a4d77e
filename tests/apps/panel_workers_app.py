"""A one-worker app (and one beat entry) for the Workers and Beat screens' real-stack test. Tasks are not `shared`, so loading this
app in the test process adds nothing to other apps' registries."""

from __future__ import annotations

from celery import Celery

app = Celery("panel_workers_app")
app.conf.task_default_queue = "pw"
app.conf.stalk_workers = [{"name": "pw", "queues": ["pw"], "concurrency": 1}]
app.conf.beat_schedule = {"pw-hourly": {"task": "pw.add", "schedule": 3600.0, "args": (20, 22)}}


@app.task(name="pw.add", shared=False)
def add(x: int, y: int) -> int:
    return x + y
