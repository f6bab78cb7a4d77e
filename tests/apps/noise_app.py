"""A test app whose tasks only sleep: a broker outage under it shows what the worker logs."""

from __future__ import annotations

import time

from celery import Celery

app = Celery("noise_app")
app.conf.task_default_queue = "noise"


@app.task(name="noise.nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
