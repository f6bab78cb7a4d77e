"""Queue depths and purge over AMQP (passive queue_declare), against a RabbitMQ if one is reachable."""

from __future__ import annotations

import os
import uuid

import pytest
from celery import Celery

from stalk.embedded.control import Control, ControlError
from stalk.embedded.control.queues import queue_depths

pytestmark = pytest.mark.procs
AMQP_URL = os.environ.get("STALK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp_app():
    app = Celery("stalk-amqp-test", broker=AMQP_URL, set_as_current=False)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        pytest.skip(f"no AMQP broker at {AMQP_URL}: {exc}")
    return app


def test_depth_counts_messages_and_purge_empties_the_queue(amqp_app):
    queue = f"stalk-test-{uuid.uuid4().hex[:8]}"
    control = Control(amqp_app)
    try:
        for priority in (0, 5, 9):
            amqp_app.send_task("x.y", (1,), queue=queue, priority=priority)
        depths = control.queue_depths()
        assert queue not in depths  # not known to this app: only queues it routes to are listed
        assert Control(amqp_app, worker_specs=()).purge(queue) == 3
        amqp_app.send_task("x.y", (1,), queue=queue)
        assert queue_depths(amqp_app, [queue, f"{queue}-missing"]) == {queue: 1}
    finally:
        with amqp_app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    with pytest.raises(ControlError, match="purge"):
        control.purge(f"{queue}-missing")
