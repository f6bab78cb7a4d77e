"""A test app for the event store: tasks that succeed, fail, retry, report progress and run long.

`eager_app` has the same tasks on a separate app: an eager Stack reconfigures its app in place, which
must not leak into the broker stacks that use `app`."""

from __future__ import annotations

import time

from celery import Celery


def add(x: int, y: int) -> int:
    return x + y


def boom(message: str) -> None:
    raise ValueError(message)


def flaky(self, fail_times: int) -> int:
    """Retries `fail_times` times, then succeeds with the number of retries it took."""
    if self.request.retries < fail_times:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries} failed"), countdown=0)
    return self.request.retries


def progress(self, steps: int, pause: float) -> int:
    """Reports PROGRESS current/total, then holds the last step for `pause` s."""
    for i in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"current": i, "total": steps, "status": f"step {i}"})
    time.sleep(pause)
    return steps


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def make_app(main: str) -> Celery:
    app = Celery(main)
    app.conf.task_default_queue = "events"
    app.conf.stalk_workers = [{"name": "events", "queues": ["events"], "concurrency": 2}]
    app.task(name="ev.add")(add)
    app.task(name="ev.boom")(boom)
    app.task(name="ev.flaky", bind=True, max_retries=2, default_retry_delay=0)(flaky)
    app.task(name="ev.progress", bind=True)(progress)
    app.task(name="ev.sleep")(sleep)
    return app


app = make_app("events_app")
eager_app = make_app("events_eager_app")
