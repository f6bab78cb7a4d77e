"""Stalk's redis transport (one redis-py client per pool) against a real redis-protocol server on loopback:
chosen for redis URLs only, the same wire format as kombu's stock transport, survives a broker restart."""

from __future__ import annotations

import pytest
from celery import Celery
from kombu import Connection, Consumer, Exchange, Producer, Queue

from stalk.embedded.broker.fake_server import EmbeddedRedisServer
from stalk.embedded.celery_app import configure_app
from stalk.embedded.patches import kombu_redis_channel

from .conftest import SERVER_PASSWORD as PASSWORD
from .conftest import server_url as url


@pytest.mark.parametrize(("broker", "eager", "chosen"), [
    ("redis://:pw@127.0.0.1:1/0", False, kombu_redis_channel.NAME),
    ("rediss://:pw@127.0.0.1:1/0", False, None),
    ("redis://:pw@127.0.0.1:1/0", True, None),
    ("amqp://guest:guest@127.0.0.1:5672//", False, None),
    ("redis+socket:///tmp/redis.sock", False, kombu_redis_channel.NAME),  # Stalk's own broker's socket
])
def test_the_transport_is_chosen_for_redis_urls_only(broker, eager, chosen):
    app = configure_app(Celery("t", set_as_current=False), broker, None, eager=eager)
    assert app.conf.broker_transport == chosen
    configure_app(app, "amqp://guest:guest@127.0.0.1:5672//", None)  # a later broker of another kind
    assert app.conf.broker_transport is None


def test_the_users_own_transport_is_kept():
    app = Celery("t", set_as_current=False)
    app.conf.broker_transport = "redis"
    configure_app(app, "redis://:pw@127.0.0.1:1/0", None)
    assert app.conf.broker_transport == "redis"


def test_one_client_per_pool_and_a_new_one_for_a_new_pool(server):
    with Connection(url(server), transport=kombu_redis_channel.Transport) as conn:
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first and first.ping()
        channel._disconnect_pools()  # what kombu does in a forked child
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool and second.ping()


def roundtrip(server: EmbeddedRedisServer, publish_with: type | None, consume_with: type | None, n: int = 50) -> list:
    exchange = Exchange("interop", "direct")
    queue = Queue("interop", exchange, routing_key="interop")
    with Connection(url(server), transport=publish_with) as conn:
        producer = Producer(conn, serializer="json")
        for i in range(n):
            producer.publish({"i": i}, exchange=exchange, routing_key="interop", declare=[queue])
    got: list = []

    def on_message(body, message):
        got.append(body["i"])
        message.ack()

    with Connection(url(server), transport=consume_with) as conn:
        with Consumer(conn, [queue], callbacks=[on_message], accept=["json"]):
            while len(got) < n:
                conn.drain_events(timeout=5)
        unacked = conn.default_channel.client.hlen("unacked")
    assert unacked == 0
    return got


def test_stalks_transport_and_kombus_stock_transport_read_each_others_messages(server):
    assert sorted(roundtrip(server, kombu_redis_channel.Transport, None)) == list(range(50))
    assert sorted(roundtrip(server, None, kombu_redis_channel.Transport)) == list(range(50))


def test_a_publish_after_the_broker_restarts_goes_through(server):
    """Whether redis-py reconnects or kombu's retry replaces the channel, the cached client must publish to the
    new server (to the queue's list directly: kombu remembers bindings it declared, the new server has none)."""
    with Connection(url(server), transport=kombu_redis_channel.Transport) as conn:
        producer = Producer(conn, serializer="json")
        producer.publish({"n": 1}, exchange="", routing_key="restart")
        port = server.port
        server.stop()
        again = EmbeddedRedisServer(port, PASSWORD)
        again.start()
        try:
            producer.publish({"n": 2}, exchange="", routing_key="restart", retry=True,
                             retry_policy={"max_retries": 3, "interval_start": 0.1})
            assert conn.default_channel._create_client().llen("restart") == 1  # a new server: only the second
        finally:
            again.stop()


def test_urls_name_the_redis_scheme_not_the_transport_path():
    app = configure_app(Celery("t", set_as_current=False), "redis://:secret@127.0.0.1:7000/0", None)
    with app.connection_for_write() as conn:
        assert conn.as_uri() == "redis://:**@127.0.0.1:7000/0"
        assert conn.clone().transport_cls == kombu_redis_channel.NAME
