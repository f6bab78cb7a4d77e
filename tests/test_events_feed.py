"""The receiver's redis fast path and the batched task-sent events, against the embedded broker (a real
redis-protocol server on loopback): same events as Celery's own receiver, JSON only, reconnects."""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from celery.events.event import get_exchange
from kombu import Producer

from stalk.embedded.broker.fake_server import EmbeddedRedisServer
from stalk.embedded.events.receiver import EventReceiver
from stalk.embedded.events.sent_batch import SentEvents
from stalk.embedded.patches.kombu_redis_fanout import NotJson, decode

from .conftest import SERVER_PASSWORD as PASSWORD
from .conftest import server_url, wait_until


def envelope(body: object, *, content_type: str = "application/json", compression: str | None = None) -> bytes:
    raw = json.dumps(body).encode()
    headers = {}
    if compression:
        raw, headers = zlib.compress(raw), {"compression": "application/x-gzip"}
    return json.dumps({"body": base64.b64encode(raw).decode(), "content-type": content_type,
                       "content-encoding": "utf-8", "headers": headers,
                       "properties": {"body_encoding": "base64"}}).encode()


def test_decode_reads_single_batched_and_compressed_events():
    one = {"type": "task-sent", "uuid": "a"}
    assert decode(envelope(one)) == [one]
    assert decode(envelope([one, {"type": "task-received", "uuid": "a"}]))[1]["type"] == "task-received"
    assert decode(envelope(one, compression="zlib")) == [one]


def test_decode_refuses_anything_but_json_before_reading_the_body():
    with pytest.raises(NotJson, match="application/x-python-serialize"):
        decode(envelope("not decoded", content_type="application/x-python-serialize"))


def app_for(server: EmbeddedRedisServer) -> Celery:
    app = Celery("feed", set_as_current=False, broker=server_url(server))
    app.conf.update(broker_connection_retry_on_startup=True, task_send_sent_event=True)
    return app


@pytest.fixture
def receivers(server) -> Iterator[tuple[Celery, dict[bool, list[dict]], dict[bool, EventReceiver]]]:
    """A fast receiver and Celery's own, both listening to the same broker."""
    app = app_for(server)
    heard: dict[bool, list[dict]] = {True: [], False: []}
    started = {fast: EventReceiver(app, heard[fast].append, fast=fast) for fast in (True, False)}
    for receiver in started.values():
        receiver.start()
    yield app, heard, started
    for receiver in started.values():
        receiver.stop()


def connected(receivers: dict[bool, EventReceiver]) -> bool:
    return all(r.connected_since is not None for r in receivers.values())


def key(event: dict) -> tuple:
    return event["type"], event.get("uuid"), event["hostname"], round(event["timestamp"], 6)


def test_the_fast_receiver_hears_what_celerys_receiver_hears(receivers):
    app, heard, started = receivers
    wait_until(lambda: connected(started), timeout=20)
    with app.connection_for_write() as conn:
        single = app.events.Dispatcher(conn, hostname="w1@host", enabled=True)
        batched = app.events.Dispatcher(conn, hostname="w2@host", enabled=True, buffer_group=["task"],
                                        buffer_limit=100)
        for i in range(5):
            single.send("task-received", uuid=f"s{i}", name="t")
            batched.send("task-started", uuid=f"b{i}", name="t")
        single.send("worker-heartbeat", freq=2.0, active=1)
        batched.flush()
    def from_dispatchers(fast: bool) -> list[tuple]:
        return [key(e) for e in heard[fast] if e["hostname"] in ("w1@host", "w2@host")]

    wait_until(lambda: len(from_dispatchers(True)) >= 11 and len(from_dispatchers(False)) >= 11, timeout=20)
    fast, celery = from_dispatchers(True), from_dispatchers(False)
    assert fast == celery and len(fast) == 11
    assert all("local_received" in e for e in heard[True])


def test_a_pickle_event_is_skipped_and_the_receiver_goes_on(receivers):
    app, heard, started = receivers
    wait_until(lambda: connected(started), timeout=20)
    with app.connection_for_write() as conn:
        exchange = get_exchange(conn, name="celeryev")  # fanout on redis, as Celery publishes
        Producer(conn).publish({"type": "task-sent", "uuid": "evil"}, exchange=exchange, routing_key="task.sent",
                               serializer="pickle", declare=[exchange])
        app.events.Dispatcher(conn, hostname="w1@host", enabled=True).send("task-received", uuid="good", name="t")
    wait_until(lambda: any(e.get("uuid") == "good" for e in heard[True]), timeout=20)
    assert started[True].bad_events == 1
    assert not any(e.get("uuid") == "evil" for e in heard[True])


def test_the_fast_receiver_reconnects_after_the_broker_comes_back_and_catches_up(server):
    app = app_for(server)
    heard: list[dict] = []
    catch_ups: list[int] = []
    receiver = EventReceiver(app, heard.append, on_connect=lambda: catch_ups.append(1))
    receiver.start()
    try:
        wait_until(lambda: receiver.connected_since is not None, timeout=20)
        port = server.port
        server.stop()
        wait_until(lambda: receiver.connected_since is None, timeout=20)
        again = EmbeddedRedisServer(port, PASSWORD)
        again.start()
        try:
            wait_until(lambda: receiver.connections == 2 and len(catch_ups) == 2, timeout=30)
            with app.connection_for_write() as conn:
                app.events.Dispatcher(conn, hostname="w1@host", enabled=True).send("task-received", uuid="after")
            wait_until(lambda: any(e.get("uuid") == "after" for e in heard), timeout=20)
        finally:
            again.stop()
    finally:
        receiver.stop()


def test_task_sent_events_leave_in_a_few_messages(server):
    app = app_for(server)
    sub = redis.Redis(port=server.port, password=PASSWORD).pubsub(ignore_subscribe_messages=True)
    sub.psubscribe("/0.celeryev/*")
    sent = SentEvents(app)
    sent.start()
    try:
        ids = [app.send_task("feed.noop", (i,), queue="feed").id for i in range(50)]
        events: list[dict] = []
        messages = 0
        deadline = time.monotonic() + 20
        while len(events) < 50 and time.monotonic() < deadline:
            msg = sub.get_message(timeout=1)  # None also for the subscription's confirmation
            if msg is not None:
                messages += 1
                events += decode(msg["data"])
    finally:
        sent.stop()
        sub.close()
    assert [e["uuid"] for e in events] == ids
    assert {e["type"] for e in events} == {"task-sent"} and events[0]["name"] == "feed.noop"
    assert events[0]["queue"] == "feed" and events[0]["args"] == "(0,)"
    assert messages < 50
    assert sent._send is app.amqp.send_task_message  # Celery's sender is back


def test_task_sent_events_wait_while_the_broker_is_away(server):
    app = app_for(server)
    heard: list[dict] = []
    receiver = EventReceiver(app, heard.append)
    sent = SentEvents(app)
    sent.start()
    receiver.start()
    port = server.port
    try:
        wait_until(lambda: receiver.connected_since is not None, timeout=20)
        server.stop()
        for i in range(3):  # as send_task_message does, after a task message that made it
            sent.publish("task-sent", {"uuid": f"w{i}", "name": "feed.noop"}, producer=None)
        wait_until(lambda: sent.failed_flushes >= 1, timeout=20)
        again = EmbeddedRedisServer(port, PASSWORD)
        again.start()
        try:
            wait_until(lambda: {f"w{i}" for i in range(3)} <= {e.get("uuid") for e in heard}, timeout=30)
            assert sent.published == 3
        finally:
            receiver.stop()
            sent.stop()
            again.stop()
    finally:
        receiver.stop()
        sent.stop()
