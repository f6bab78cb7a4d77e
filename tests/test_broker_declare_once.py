"""A client on Stalk's redis transport skips the queue declarations kombu's cache says are done, against a
real redis-protocol server on loopback: every message still lands in its queue, a new connection declares
again, and nothing changes on other transports or for exchanges that route by binding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Exchange, Queue

from stalk.embedded.broker.fake_server import EmbeddedRedisServer
from stalk.embedded.celery_app import configure_app
from stalk.embedded.patches.celery_send_task_message import skip_declared

from .conftest import server_url as url


class Client:
    """A configured client app whose sends are recorded as Celery's sender receives them."""

    def __init__(self, server: EmbeddedRedisServer) -> None:
        self.app = configure_app(Celery("t", set_as_current=False), url(server), None)
        self.app.conf.task_queues = [Queue("celery", Exchange("celery", "direct"), routing_key="celery"),
                                     Queue("fan", Exchange("fan", "fanout"))]
        self.declares: list[Any] = []
        send = self.app.amqp.send_task_message

        def recorded(producer: Any, name: str, message: tuple, **options: Any) -> Any:
            self.declares.append(options.get("declare"))
            return send(producer, name, message, **options)

        self.app.amqp.send_task_message = recorded
        self.restore = skip_declared(self.app)
        self.redis = redis.Redis.from_url(url(server))

    def ids_in(self, queue: str) -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in self.redis.lrange(queue, 0, -1)]


@pytest.fixture
def client(server: EmbeddedRedisServer) -> Iterator[Client]:
    made = Client(server)
    yield made
    made.redis.close()


def test_only_the_first_send_on_a_connection_declares_and_every_message_lands(client):
    sent = [client.app.send_task("t.noop", queue="celery").id for _ in range(5)]
    assert client.declares[0] is None  # Celery declared it, as always
    assert client.declares[1:] == [[]] * 4  # kombu's cache held it: no copy bound and thrown away
    assert client.redis.smembers("_kombu.binding.celery")  # the first send's declaration happened
    assert sorted(client.ids_in("celery")) == sorted(sent)


def test_a_new_connection_declares_again(client):
    client.app.send_task("t.noop", queue="celery")
    client.redis.delete("_kombu.binding.celery")
    with client.app.connection_for_write() as conn:  # a connection of its own: an empty cache
        client.app.send_task("t.noop", queue="celery", connection=conn)
        client.app.send_task("t.noop", queue="celery", connection=conn)
    assert client.declares[-2:] == [None, []]
    assert client.redis.smembers("_kombu.binding.celery")
    assert len(client.ids_in("celery")) == 3


def test_a_default_queue_and_an_unknown_queue_name_are_left_to_celery(client):
    client.app.send_task("t.noop")  # no queue: Celery's default queue
    client.app.send_task("t.noop")
    client.app.send_task("t.noop", queue="new-one")  # created by Celery at its first send
    client.app.send_task("t.noop", queue="new-one")
    assert client.declares == [None, [], None, []]
    assert len(client.ids_in("celery")) == 2 and len(client.ids_in("new-one")) == 2


def test_a_fanout_queue_and_an_explicit_exchange_always_declare(client):
    client.app.send_task("t.noop", queue="fan")
    client.app.send_task("t.noop", queue="fan")
    client.app.send_task("t.noop", queue="celery", exchange="celery", routing_key="celery")
    client.app.send_task("t.noop", queue="celery", exchange="celery", routing_key="celery")
    assert client.declares == [None, None, None, None]


def test_the_restore_puts_celerys_sender_back(client):
    client.restore()
    client.app.send_task("t.noop", queue="celery")
    client.app.send_task("t.noop", queue="celery")
    assert client.declares == [None, None]


@pytest.mark.parametrize("broker", ["amqp://guest:guest@127.0.0.1:5672//", "rediss://:pw@127.0.0.1:1/0"])
def test_other_transports_are_left_alone(broker):
    app = configure_app(Celery("t", set_as_current=False), broker, None)
    assert skip_declared(app) is None
