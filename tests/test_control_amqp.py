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
    with pytest.raises(ControlError, match="no such queue"):
        control.purge(f"{queue}-missing")


def test_a_purge_marks_purged_the_tasks_that_waited_in_the_queue_and_says_it_is_inferred(amqp_app):
    """RabbitMQ deletes without naming the messages: the store takes the tasks it saw sent to the queue
    and not received since, through the purge's event on the broker."""
    from stalk.embedded.events import EventStore
    from stalk.embedded.events.receiver import EventReceiver

    from .conftest import wait_until

    queue = f"stalk-test-{uuid.uuid4().hex[:8]}"
    amqp_app.conf.task_send_sent_event = True
    store = EventStore().start()
    store.attach(EventReceiver(amqp_app, store.ingest))
    try:
        def heard() -> bool:  # the receiver's queue is bound once an event of ours arrives
            with amqp_app.connection_for_write() as conn:
                amqp_app.events.Dispatcher(conn, hostname="probe@test").send("worker-heartbeat", freq=60)
            return any(w.hostname == "probe@test" for w in store.workers())

        wait_until(heard, timeout=20, every=0.3)
        ids = [amqp_app.send_task("x.y", (i,), queue=queue).id for i in range(2)]
        other = amqp_app.send_task("x.y", (9,), queue=f"{queue}-other").id
        wait_until(lambda: all(store.get(t) for t in [*ids, other]), timeout=20)
        assert Control(amqp_app, worker_specs=()).purge(queue, by="a test") == 2
        wait_until(lambda: all(store.get(t).state == "PURGED" for t in ids), timeout=20)
        reason = store.get(ids[0]).exception
        assert reason.startswith(f"purged from queue {queue} at ") and "by a test (" in reason and "inferred" in reason
        assert store.get(other).state == "PENDING"
    finally:
        store.stop()
        with amqp_app.connection_for_write() as conn:
            for name in (queue, f"{queue}-other"):
                conn.default_channel.queue_delete(name)
