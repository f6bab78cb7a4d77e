"""The app both sides of the stack benchmarks run: one no-op task on its own queue."""

import os

from celery import Celery

app = Celery("bench_noop")
app.conf.task_default_queue = "bench"
if os.environ.get("BENCH_STOCK_TRANSPORT"):  # Stalk keeps a user's own transport: kombu's, as it ships
    app.conf.broker_transport = "redis"


@app.task(name="bench.noop")
def noop() -> None:
    return None
