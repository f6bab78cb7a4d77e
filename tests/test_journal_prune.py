"""The publish journal forgets every task that has a result, however many, behind tasks still running,
against a real redis-protocol server on loopback."""

from __future__ import annotations

import redis
from celery import Celery

from stalk.embedded import journal
from stalk.embedded.celery_app import configure_app
from stalk.embedded.journal import PublishJournal

from .conftest import server_url


def test_prune_drops_every_finished_task_behind_running_ones(server, monkeypatch):
    monkeypatch.setattr(journal, "PRUNE_BATCH", 10)
    url = server_url(server)
    app = configure_app(Celery("t", set_as_current=False), url, url)
    book = PublishJournal(app, url, url)
    client = redis.Redis.from_url(url)
    try:
        ids = [app.send_task("t.noop", queue="celery").id for _ in range(55)]
        running, finished = ids[:15], ids[15:]  # the oldest 15 are still running: no result yet
        for task_id in finished:
            client.set(f"celery-task-meta-{task_id}", '{"status": "SUCCESS"}')
        book.prune()
        assert len(book) == len(running)
        client.set(f"celery-task-meta-{running[0]}", '{"status": "SUCCESS"}')
        book.prune()
        assert len(book) == len(running) - 1
    finally:
        client.close()
        book.stop()
