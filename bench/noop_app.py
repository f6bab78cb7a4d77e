"""The app both sides of the stack benchmarks run: one no-op task on its own queue."""

from celery import Celery

app = Celery("bench_noop")
app.conf.task_default_queue = "bench"


@app.task(name="bench.noop")
def noop() -> None:
    return None
