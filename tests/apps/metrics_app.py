"""A test app for /metrics: tasks that succeed, fail and charge a quota on one worker ("work"); the queue
"backlog" has no worker, so what is sent there waits. `eager_app` has the same tasks on a separate app (an
eager Stack reconfigures its app in place)."""

from __future__ import annotations

from celery import Celery

from stalk.embedded.quota import metered


def add(x: int, y: int) -> int:
    return x + y


def boom(message: str) -> None:
    raise ValueError(message)


@metered("api", units=3)
def charge(self, item: str) -> str:
    return item


def make_app(main: str) -> Celery:
    app = Celery(main)
    app.conf.task_default_queue = "work"
    app.conf.stalk_workers = [{"name": "metrics", "queues": ["work"], "concurrency": 2}]
    app.conf.stalk_quotas = {"api": {"daily_limit": 100, "priority_reserve": 10}}
    app.task(name="m.add")(add)
    app.task(name="m.boom")(boom)
    app.task(name="m.charge", bind=True)(charge)
    return app


app = make_app("metrics_app")
eager_app = make_app("metrics_eager_app")
