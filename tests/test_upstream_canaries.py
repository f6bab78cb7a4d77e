"""Canaries for stalk.embedded.patches: each test checks that an upstream behaviour or private name a patch
relies on is still there and shaped as assumed. A failure names the patch module to revisit (its docstring
says what it overrides, what it buys and what happens without it). Run these before raising a pin in
pyproject.toml. Fast: no processes; where a broker is needed it is the embedded one, a thread of this process.

A few canaries fail when upstream has fixed what a patch works around: then the patch may be unneeded.
The last section covers private names read (not patched) outside the patches."""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import json
import os
import select
import socket
import sys
import time
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery, signals
from celery.app.amqp import AMQP
from celery.events.receiver import EventReceiver
from celery.utils.time import utcoffset
from celery.worker.consumer.consumer import Consumer
from celery.worker.consumer.events import Events
from kombu import Connection, Exchange, Producer, Queue
from kombu import connection as kombu_connection
from kombu.common import maybe_declare
from kombu.transport import redis as kombu_redis
from kombu.utils.imports import symbol_by_name

from stalk.embedded.celery_app import configure_app
from stalk.embedded.events import TaskRecord
from stalk.embedded.patches import (
    celery_event_dispatcher,
    cpython_gc_untrack,
    fakeredis_tcp_server,
    kombu_redis_channel,
    kombu_redis_fanout,
    kombu_redis_reliable,
    redis_connection_guard,
)

from .conftest import server_url

PATCHES = "stalk.embedded.patches."


def revisit(patch: str, what: str) -> str:
    return f"revisit {PATCHES}{patch}: {what}"


def memory_app() -> Celery:
    return Celery("canary", set_as_current=False, broker="memory://")


# -- kombu_redis_channel ----------------------------------------------------------------------------------

def test_kombu_redis_channel_overrides_methods_kombu_still_has():
    why = "kombu's redis Channel changed what the subclass overrides"
    for name, params in {"_create_client": ["self", "asynchronous"], "_connparams": ["self", "asynchronous"],
                         "close": ["self"]}.items():
        method = getattr(kombu_redis.Channel, name, None)
        assert callable(method), revisit("kombu_redis_channel", f"{why}: Channel.{name} is gone")
        assert list(inspect.signature(method).parameters) == params, revisit(
            "kombu_redis_channel", f"{why}: Channel.{name}{inspect.signature(method)}")
    assert isinstance(inspect.getattr_static(kombu_redis.Channel, "pool"), property), revisit(
        "kombu_redis_channel", f"{why}: Channel.pool is no longer a property")
    assert "self._create_client()" in inspect.getsource(kombu_redis.Channel.conn_or_acquire), revisit(
        "kombu_redis_channel", "Channel.conn_or_acquire no longer builds its client with _create_client()")
    assert "self.connection.client" in inspect.getsource(kombu_redis.Channel._connparams), revisit(
        "kombu_redis_channel", "Channel._connparams no longer reads the transport's client")
    assert kombu_redis.Transport.Channel is kombu_redis.Channel, revisit(
        "kombu_redis_channel", "kombu's redis Transport no longer names its Channel class in `Channel`")
    assert kombu_connection.resolve_aliases.get(kombu_redis_channel.NAME) == "redis", revisit(
        "kombu_redis_channel", "kombu.connection.resolve_aliases no longer maps the transport to redis://")


def test_kombu_takes_a_socket_urls_transport_from_its_prefix_and_celery_builds_with_amqp_connection():
    """use_socket_connections: on `redis+socket://`, kombu's Connection takes the transport from the URL's
    prefix over the one asked for; Celery builds every connection with `app.amqp.Connection`."""
    url = "redis+socket://u:p@/tmp/stalk-canary.sock?virtual_host=1"
    stock = Connection(url, transport=kombu_redis_channel.NAME)
    assert (stock.transport_cls, stock.uri_prefix) == ("redis", "redis"), revisit(
        "kombu_redis_channel", "a redis+socket:// URL no longer overrides the transport asked for")
    app = configure_app(Celery("canary", set_as_current=False), url, None)
    with app.connection_for_write() as conn:
        assert type(conn) is kombu_redis_channel.SocketConnection, revisit(
            "kombu_redis_channel", "Celery no longer builds its connections with app.amqp.Connection")
        assert conn.get_transport_cls() is kombu_redis_channel.Transport
        assert conn.clone().get_transport_cls() is kombu_redis_channel.Transport, revisit(
            "kombu_redis_channel", "Connection.clone no longer re-creates through self.__class__")
        assert conn.as_uri() == "redis+socket://u:**@/tmp/stalk-canary.sock"


def test_kombus_connection_pool_builds_its_own_class_and_celerys_pool_comes_from_connection_pool():
    """use_socket_connections' pools: kombu's ConnectionPool.new builds a kombu PooledConnection from the
    connection's `_info(resolve=False)`, whatever the connection's class (on `redis+socket://`: the stock
    transport); Celery's `app.pool` (its producer pool's connections) comes from `Connection.Pool`."""
    url = "redis+socket://u:p@/tmp/stalk-canary.sock?virtual_host=1"
    stock = kombu_connection.ConnectionPool(kombu_redis_channel.SocketConnection(url, transport=kombu_redis_channel.NAME))
    with stock.acquire() as conn:
        assert type(conn) is kombu_connection.PooledConnection and conn.transport_cls == "redis", revisit(
            "kombu_redis_channel", "kombu's ConnectionPool no longer builds a stock PooledConnection: "
            "SocketConnectionPool may be unneeded")
    app = configure_app(Celery("canary", set_as_current=False), url, None)
    assert type(app.pool) is kombu_redis_channel.SocketConnectionPool, revisit(
        "kombu_redis_channel", "Celery's app.pool no longer comes from its connection's Pool()")
    with app.producer_or_acquire() as producer:
        assert producer.connection.get_transport_cls() is kombu_redis_channel.Transport
        assert producer.connection.as_uri() == "redis+socket://u:**@/tmp/stalk-canary.sock"


def test_kombu_still_builds_a_redis_client_per_operation_and_the_channel_keeps_one(server):
    with Connection(server_url(server)) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is not second, revisit(
                "kombu_redis_channel", "kombu now reuses one client per pool: the CPU half of the patch may be "
                "unneeded (bench/stack_throughput.py --stock-transport)")
    with Connection(server_url(server), transport=kombu_redis_channel.Transport) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second and first.connection_pool is channel.pool, revisit(
                "kombu_redis_channel", "kombu's operations no longer reach the overridden _create_client")


@contextmanager
def detached(conn: Connection) -> Iterator[Any]:
    """The channel with its transport detached from `conn`, as Celery's consumer leaves it on a broker loss."""
    channel = conn.default_channel
    with channel.conn_or_acquire():  # the synchronous pool exists, as after any publish or ack
        pass
    transport = channel.connection
    transport.client = None  # kombu's Connection._do_close_transport
    try:
        yield channel
    finally:
        transport.client = conn


def test_kombu_still_fails_on_a_detached_transport_and_the_channel_does_not(server):
    with Connection(server_url(server)) as conn, detached(conn) as channel:
        try:
            kombu_redis.Channel._connparams(channel)
        except AttributeError as exc:
            assert "hostname" in str(exc), revisit("kombu_redis_channel", f"a detached transport now fails with {exc}")
        else:
            pytest.fail(revisit("kombu_redis_channel", "kombu's Channel._connparams now copes with a detached "
                                "transport: the broker-restart half of the patch may be unneeded "
                                "(tests/test_faults_broker.py on the stock transport)"))
    with Connection(server_url(server), transport=kombu_redis_channel.Transport) as conn, detached(conn) as channel:
        params = channel._connparams()
        assert params["port"] == server.port, revisit(
            "kombu_redis_channel", "the kept connection parameters no longer name the broker")



# -- kombu_redis_reliable -----------------------------------------------------------------------------------

def test_kombu_redis_reliable_overrides_names_kombu_still_has():
    why = "kombu's redis transport changed what the reliable consume overrides"
    expected = {
        (kombu_redis.Channel, "_brpop_start"): ["self", "timeout"],
        (kombu_redis.Channel, "_brpop_read"): ["self", "options"],
        (kombu_redis.Channel, "_poll_error"): ["self", "type", "options"],
        (kombu_redis.QoS, "append"): ["self", "message", "delivery_tag"],
        (kombu_redis.QoS, "_remove_from_indices"): ["self", "delivery_tag", "pipe"],
        (kombu_redis.QoS, "restore_by_tag"): ["self", "tag", "client", "leftmost"],
        (kombu_redis.QoS, "restore_unacked"): ["self", "client"],
        (kombu_redis.MultiChannelPoller, "on_poll_start"): ["self"],
        (kombu_redis.MultiChannelPoller, "on_readable"): ["self", "fileno"],
        (kombu_redis.MultiChannelPoller, "_register_BRPOP"): ["self", "channel"],
    }
    for (cls, name), params in expected.items():
        method = getattr(cls, name, None)
        assert callable(method), revisit("kombu_redis_reliable", f"{why}: {cls.__name__}.{name} is gone")
        assert list(inspect.signature(method).parameters) == params, revisit(
            "kombu_redis_reliable", f"{why}: {cls.__name__}.{name}{inspect.signature(method)}")
    assert "dumps([message._raw, EX, RK])" in inspect.getsource(kombu_redis.QoS.append), revisit(
        "kombu_redis_reliable", "kombu's unacked entry is no longer [payload, exchange, routing_key]: the Lua pop "
        "writes that shape")
    assert "self.cycle = MultiChannelPoller()" in inspect.getsource(kombu_redis.Transport.__init__), revisit(
        "kombu_redis_reliable", "kombu's redis Transport no longer builds its poller in __init__")
    assert "chan.handlers[type]()" in inspect.getsource(kombu_redis.MultiChannelPoller.on_readable), revisit(
        "kombu_redis_reliable", "the poller no longer dispatches readable sockets through channel.handlers")
    for name in ("_q_for_pri", "priority_steps", "_flush_brpop_reauth", "unacked_key", "unacked_index_key",
                 "from_transport_options"):
        assert hasattr(kombu_redis.Channel, name), revisit("kombu_redis_reliable", f"kombu's redis Channel has no {name}")
    assert "self._queue_cycle" in inspect.getsource(kombu_redis.Channel.__init__), revisit(
        "kombu_redis_reliable", "kombu's redis Channel no longer keeps its queue cycle in _queue_cycle")


def test_the_reliable_pop_records_the_message_as_kombu_would_and_an_ack_forgets_it(server):
    """The Lua pop moves a message into kombu's unacked table (the entry kombu's own QoS.append writes) and
    this process's held set; the consumer gets it; an ack removes it from all three."""
    got: list[Any] = []
    with Connection(server_url(server), transport=kombu_redis_reliable.Transport,
                    transport_options={"stalk_holder": "canary@host"}) as conn:
        queue = Queue("reliable-canary", Exchange("reliable-canary"), "reliable-canary")
        with conn.Consumer(queue, callbacks=[lambda _body, message: got.append(message)], accept=["json"]):
            Producer(conn.default_channel).publish({"n": 1}, exchange=queue.exchange, routing_key="reliable-canary",
                                                   declare=[queue], serializer="json")
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError, socket.timeout):
                    conn.drain_events(timeout=0.5)
            assert got, revisit("kombu_redis_reliable", "the reliable channel delivered nothing")
            message = got[0]
            client = conn.default_channel.client
            held = kombu_redis_reliable.held_key("canary@host", os.getpid())
            entry = json.loads(client.hget("unacked", message.delivery_tag))
            assert entry[0]["properties"]["delivery_tag"] == message.delivery_tag and entry[1:] == [
                "reliable-canary", "reliable-canary"], revisit("kombu_redis_reliable", f"unacked entry {entry}")
            assert client.zscore("unacked_index", message.delivery_tag) is not None
            assert client.sismember(held, message.delivery_tag)
            message.ack()
            assert client.hget("unacked", message.delivery_tag) is None
            assert not client.sismember(held, message.delivery_tag)

# -- celery_send_task_message -----------------------------------------------------------------------------

def test_celerys_sender_is_an_attribute_the_patch_can_replace():
    app = memory_app()
    assert "send_task_message" in vars(AMQP), revisit("celery_send_task_message", "AMQP.send_task_message moved")
    params = inspect.signature(app.amqp.send_task_message).parameters
    for name in ("producer", "name", "message", "queue", "exchange", "declare", "event_dispatcher"):
        assert name in params, revisit("celery_send_task_message", f"Celery's task sender lost its `{name}` argument")
    calls: list[dict] = []
    send = app.amqp.send_task_message

    def recorded(producer: Any, name: str, message: tuple, **options: Any) -> Any:
        calls.append(options)
        return send(producer, name, message, **options)

    app.amqp.send_task_message = recorded
    assert app.amqp.send_task_message is recorded, revisit(
        "celery_send_task_message", "AMQP.send_task_message can no longer be replaced on the instance")
    app.send_task("canary.noop", queue="celery")
    assert calls and isinstance(calls[0].get("queue"), Queue) and calls[0].get("declare") is None, revisit(
        "celery_send_task_message", f"Celery.send_task no longer calls app.amqp.send_task_message as assumed: {calls}")


def test_celery_sends_a_direct_queues_task_by_name_and_keeps_the_declare_it_is_given():
    app = memory_app()
    seen: list[tuple] = []

    def published(declare: Any = None, exchange: Any = None, routing_key: Any = None, **_: Any) -> None:
        seen.append((declare, exchange, routing_key))

    signals.before_task_publish.connect(published, weak=False)
    try:
        app.send_task("canary.noop", queue="celery")
        app.send_task("canary.noop", queue="celery", declare=[])
    finally:
        signals.before_task_publish.disconnect(published)
    (declared, exchange, key), (kept, _, _) = seen
    assert (exchange, key) == ("", "celery"), revisit(
        "celery_send_task_message", "a direct queue's task no longer goes by name through the anonymous "
        f"exchange ({exchange!r}, {key!r}): a declaration may decide where it lands")
    assert [q.name for q in declared] == ["celery"] and kept == [], revisit(
        "celery_send_task_message", f"Celery's sender no longer declares [queue] by default / keeps declare=[]: "
        f"{declared}, {kept}")


def test_kombu_caches_a_declaration_by_hash_per_connection():
    queue = Queue("canary", Exchange("canary", "direct"), routing_key="canary")
    assert queue.can_cache_declaration, revisit("celery_send_task_message", "Queue.can_cache_declaration changed")
    with Connection("memory://") as conn:
        assert Producer(conn).connection is conn
        assert maybe_declare(queue, conn.default_channel) is True
        assert hash(queue) in conn.declared_entities, revisit(
            "celery_send_task_message", "kombu's maybe_declare no longer keeps hash(queue) in declared_entities")
        assert maybe_declare(queue, conn.default_channel) is False, revisit(
            "celery_send_task_message", "kombu declares a cached queue again")
    with Connection("memory://") as conn:
        assert hash(queue) not in conn.declared_entities, revisit(
            "celery_send_task_message", "a new connection starts with kombu's declarations cached")


# -- kombu_redis_fanout -----------------------------------------------------------------------------------

def test_kombu_names_the_fanout_topics_and_publishes_the_envelope_the_feed_reads(server):
    assert list(inspect.signature(kombu_redis.Channel._get_publish_topics).parameters) == [
        "self", "exchange", "routing_key"], revisit("kombu_redis_fanout", "Channel._get_publish_topics changed")
    app = Celery("canary", set_as_current=False, broker=server_url(server))
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        assert channel._get_publish_topics(app.conf.event_exchange, "*") == ["/0.celeryev/*"], revisit(
            "kombu_redis_fanout", "kombu's fanout topic names changed")
        feed = kombu_redis_fanout.redis_feed(conn, app.conf.event_exchange)
        assert feed is not None, revisit("kombu_redis_fanout", "kombu's redis channel class moved")
        feed.subscribe()
        try:
            assert feed.pubsub.connection.retry is not None, revisit(
                "kombu_redis_fanout", "redis-py's pub/sub connection no longer has a `retry`")
            with app.events.default_dispatcher(hostname="canary@here") as dispatcher:
                dispatcher.send("worker-online", canary=1)
            deadline = time.monotonic() + 10
            data = next((d for d in feed.messages(lambda: time.monotonic() > deadline) if d is not None), None)
            assert data is not None, revisit("kombu_redis_fanout", "nothing heard on kombu's fanout topic")
            (event,) = feed.events(data)
        finally:
            feed.close()
    assert event["type"] == "worker-online" and event["canary"] == 1 and "local_received" in event, revisit(
        "kombu_redis_fanout", f"the envelope kombu publishes on the fanout topic changed: {data[:200]!r}")


def test_celerys_receiver_moves_timestamps_as_the_feed_does():
    with Connection("memory://") as conn:
        receiver = EventReceiver(conn, handlers={}, app=memory_app())
        for offset in (-5, 0, 3):
            body = {"type": "task-started", "uuid": "a", "clock": 1, "timestamp": 1_000_000.0, "utcoffset": offset}
            _, celerys = receiver.event_from_message(dict(body), now=lambda: 42.0)
            ours = kombu_redis_fanout.localize(dict(body), utcoffset(), 42.0)
            assert (ours["timestamp"], ours["local_received"]) == (celerys["timestamp"], celerys["local_received"]), \
                revisit("kombu_redis_fanout", "Celery's EventReceiver.event_from_message localizes differently")


# -- celery_event_dispatcher ------------------------------------------------------------------------------

class Hub:
    def __init__(self) -> None:
        self.later: list[tuple[float, Any]] = []

    def call_later(self, delay: float, fn: Any) -> None:
        self.later.append((delay, fn))

    def call_soon(self, fn: Any) -> None:
        self.later.append((0.0, fn))


def standin_consumer(app: Celery) -> Any:
    """What Celery's Events step and the batching step read of a worker's consumer, with an event loop."""
    c = types.SimpleNamespace(app=app, hostname="canary@here", hub=Hub(), amqheartbeat=0)
    c.connection_for_write = lambda heartbeat=None: app.connection_for_write()
    c.on_send_event_buffered = types.MethodType(Consumer.on_send_event_buffered, c)
    c._flush_events = types.MethodType(Consumer._flush_events, c)
    return c


def test_celerys_events_step_makes_the_dispatcher_the_batching_step_retunes():
    why = "Celery's consumer/EventDispatcher changed what the batching step sets or calls"
    assert "celery.worker.consumer.events:Events" in Consumer.Blueprint.default_steps, revisit(
        "celery_event_dispatcher", f"{why}: no Events step")
    assert symbol_by_name(celery_event_dispatcher.BatchTaskEvents.requires[0]) is Events
    assert "steps['consumer']" in inspect.getsource(Consumer.__init__), revisit(
        "celery_event_dispatcher", f"{why}: the consumer no longer builds its steps from app.steps['consumer']")
    app = memory_app()
    c = standin_consumer(app)
    events = Events(c, task_events=True)
    events.start(c)
    dispatcher = c.event_dispatcher
    assert (list(dispatcher.buffer_group), dispatcher.buffer_limit) == (["task"], 24), revisit(
        "celery_event_dispatcher", f"{why}: buffer_group/buffer_limit")
    assert dispatcher.on_send_buffered == c.on_send_event_buffered, revisit(
        "celery_event_dispatcher", f"{why}: on_send_buffered")
    batching = celery_event_dispatcher.BatchTaskEvents(c)
    batching.start(c)
    assert dispatcher.buffer_limit == celery_event_dispatcher.BUFFER_LIMIT
    published: list[tuple[str, list]] = []
    publish = dispatcher._publish

    def recorded(event: Any, producer: Any, routing_key: str, **kwargs: Any) -> Any:
        published.append((routing_key, event))
        return publish(event, producer, routing_key, **kwargs)

    dispatcher._publish = recorded
    dispatcher.send("task-received", uuid="a")
    dispatcher.send("task-started", uuid="a")
    assert published == [] and [d for d, _ in c.hub.later] == [celery_event_dispatcher.FLUSH_EVERY], revisit(
        "celery_event_dispatcher", f"{why}: send no longer buffers task events and calls on_send_buffered")
    c.hub.later[0][1]()  # the hub's timer fires: the consumer's _flush_events
    assert [(key, [e["type"] for e in batch]) for key, batch in published] == [
        ("task.multi", ["task-received", "task-started"])], revisit(
        "celery_event_dispatcher", f"{why}: flush no longer publishes the buffer as one task.multi: {published}")
    dispatcher.send("task-succeeded", uuid="a")
    batching.stop(c)
    assert published[-1][0] == "task.multi" and len(published) == 2, revisit(
        "celery_event_dispatcher", f"{why}: the stop step's flush")
    events.shutdown(c)


# -- cpython_gc_untrack -----------------------------------------------------------------------------------

@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's C API")
def test_cpython_untracks_and_retracks_as_the_store_assumes():
    untrack = cpython_gc_untrack.untrack
    assert cpython_gc_untrack._UNTRACK is not None, revisit(
        "cpython_gc_untrack", "ctypes.pythonapi.PyObject_GC_UnTrack is not there")
    record = TaskRecord("canary", arrival=1)
    assert gc.is_tracked(record)
    untrack(record)
    assert not gc.is_tracked(record), revisit("cpython_gc_untrack", "PyObject_GC_UnTrack left a record tracked")
    tasks: dict = {}
    untrack(tasks)
    tasks["canary"] = record
    assert gc.is_tracked(tasks), revisit(
        "cpython_gc_untrack", "a dict storing an object with GC support stays untracked: the re-untracking in "
        "events/fold.py and events/sort_index.py may be unneeded")
    untrack(tasks)
    entry = tuple(["name", 1, "canary"])
    untrack(entry)
    entries = {"canary": entry}
    assert not gc.is_tracked(tasks) and not gc.is_tracked(entries), revisit(
        "cpython_gc_untrack", "a dict storing an untracked tuple is tracked again: sort indexes would be walked")
    assert gc.is_tracked({"canary": tuple(["name", []])}), revisit(
        "cpython_gc_untrack", "a dict storing a tracked tuple stays untracked")

    class Plain:
        pass

    plain = untrack(Plain())
    gone = weakref.ref(plain)
    del plain
    assert gone() is None, revisit("cpython_gc_untrack", "an untracked object is no longer freed by its refcount")


def test_gc_freeze_moves_everything_tracked_out_of_the_collectors_way():
    """Not a patch: panel/gc_tuning.py freezes start-up objects once the stack is ready (public API)."""
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0, "revisit stalk.panel.gc_tuning: gc.freeze() froze nothing"
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0, "revisit stalk.panel.gc_tuning: gc.unfreeze() kept objects frozen"


# -- fakeredis_tcp_server ---------------------------------------------------------------------------------

def resp(*args: bytes) -> bytes:
    return b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args])


@pytest.fixture
def fake_server() -> Any:
    server = fakeredis_tcp_server.FakeServer(version=(7, 0), server_type="redis")
    assert isinstance(server.config, dict), revisit(
        "fakeredis_tcp_server", "FakeServer.config (where LoopbackFakeServer sets requirepass) changed")
    return server


@pytest.fixture
def fake_connections(fake_server: Any) -> Iterator[Any]:
    made: list[Any] = []

    def connect() -> Any:
        info = {"laddr": ("127.0.0.1", 1), "addr": ("127.0.0.1", 2), "fd": -1}
        client = fakeredis_tcp_server.FakeRedisConnection(server=fake_server, client_info=info, protocol=2)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.disconnect()


def test_fakeredis_connections_are_driven_as_the_embedded_broker_drives_them(fake_connections):
    why = "fakeredis's private connection/socket layer changed"
    client = fake_connections()
    sock = client.get_socket()
    for name in ("sendall", "put_response", "responses", "_client_info"):
        assert hasattr(sock, name), revisit("fakeredis_tcp_server", f"{why}: the socket has no `{name}`")
    assert sock._client_info.protocol_version == 2 and sock.responses.empty()
    sock.sendall(resp(b"PING"))
    assert not sock.responses.empty(), revisit("fakeredis_tcp_server", f"{why}: sendall no longer runs the command")
    assert fakeredis_tcp_server.encode_reply(client.read_response(), 2) == b"+PONG\r\n", revisit(
        "fakeredis_tcp_server", f"{why}: read_response/encode_reply")
    sock.sendall(resp(b"NOSUCHCOMMAND"))
    with pytest.raises(fakeredis_tcp_server.RaiseErrorTypes) as error:
        client.read_response()
    assert fakeredis_tcp_server.encode_reply(error.value, 2).startswith(b"-ERR "), revisit(
        "fakeredis_tcp_server", f"{why}: error replies")
    sock.sendall(resp(b"HELLO", b"3"))
    client.read_response()
    assert sock._client_info.protocol_version == 3, revisit(
        "fakeredis_tcp_server", f"{why}: HELLO 3 no longer shows in _client_info.protocol_version")


def test_fakeredis_delivers_a_published_message_through_the_subscribers_put_response(fake_connections):
    subscriber, publisher = fake_connections(), fake_connections()
    sub_sock = subscriber.get_socket()
    wake_r, wake_w = os.pipe()
    waker = fakeredis_tcp_server.Waker(wake_w)
    try:
        sub_sock.put_response = waker.wrap(sub_sock.put_response)  # as FakeConnectionHandler.setup does
        sub_sock.sendall(resp(b"SUBSCRIBE", b"canary"))
        assert subscriber.read_response() == [b"subscribe", b"canary", 1]
        waker.parked = True
        publisher.get_socket().sendall(resp(b"PUBLISH", b"canary", b"hi"))
        assert publisher.read_response() == 1
        assert select.select([wake_r], [], [], 0)[0] == [wake_r], revisit(
            "fakeredis_tcp_server", "fakeredis no longer delivers pub/sub messages through the subscriber "
            "socket's put_response: pushed replies would wait for the idle poll")
        assert subscriber.read_response() == [b"message", b"canary", b"hi"]
    finally:
        waker.detach()
        os.close(wake_r)
        os.close(wake_w)


def test_fakeredis_own_tcp_server_still_leaves_nagle_on():
    source = inspect.getsource(importlib.import_module("fakeredis._clients._tcp_server"))
    assert "TCP_NODELAY" not in source, revisit(
        "fakeredis_tcp_server", "fakeredis's TcpFakeServer now sets TCP_NODELAY: re-measure "
        "bench/embedded_broker.py --stock, the patch may be unneeded")


# -- private names read outside the patches (not moved: each message names its module) ---------------------

def test_sortedcontainers_internals_the_sort_index_writes():
    from sortedcontainers import SortedList

    from stalk.embedded.events.sort_index import _presorted

    entries = [(f"name{i:05}", i, f"id{i}") for i in range(2_500)]
    built, stock = _presorted(list(entries)), SortedList(entries)
    assert (built._lists, built._maxes, built._len) == (stock._lists, stock._maxes, stock._len), \
        "revisit stalk.embedded.events.sort_index: SortedList's _lists/_maxes/_len/_load changed (sortedcontainers)"
    built._check()  # sortedcontainers' own invariant check
    built.add(("name00000", -1, "first"))
    built.remove(entries[-1])
    built._check()
    assert built[0][2] == "first" and len(built) == 2_500


def test_celery_crontab_keeps_the_fields_beat_shows():
    from celery.schedules import crontab

    sched = crontab(minute="*/5", hour="3", day_of_month="1-7", month_of_year="*", day_of_week="mon")
    fields = ("_orig_minute", "_orig_hour", "_orig_day_of_month", "_orig_month_of_year", "_orig_day_of_week")
    assert [getattr(sched, f, None) for f in fields] == ["*/5", "3", "1-7", "*", "mon"], \
        "revisit stalk.embedded.control.beat: crontab's _orig_* fields changed"


def test_celerys_sender_hands_task_sent_events_to_the_dispatcher_it_is_given():
    """stalk.embedded.events.sent_batch passes its own object as send_task_message's event_dispatcher."""
    app = memory_app()
    calls: list[tuple] = []

    class Dispatcher:
        def publish(self, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))

    with app.producer_or_acquire() as producer:
        message = app.amqp.create_task_message("canary-id", "canary.noop", (), {}, create_sent_event=True)
        app.amqp.send_task_message(producer, "canary.noop", message, queue="celery", event_dispatcher=Dispatcher())
    ((args, kwargs),) = calls
    assert args[0] == "task-sent" and args[1]["uuid"] == "canary-id" and isinstance(args[2], Producer), \
        f"revisit stalk.embedded.events.sent_batch: Celery calls event_dispatcher.publish differently: {calls}"
    assert set(kwargs) <= {"retry", "retry_policy", "blind"}, \
        f"revisit stalk.embedded.events.sent_batch: publish got {sorted(kwargs)}"


# -- redis_connection_guard ------------------------------------------------------------------------------

def test_redis_py_tcp_connect_returns_the_socket_the_guard_checks(server):
    """redis_connection_guard wraps Connection._connect: it must still return the connected socket, before
    anything is sent, with host and port on the connection."""
    import socket

    import redis

    assert redis_connection_guard._original_connect is redis.connection.Connection.__dict__.get(
        "_connect", redis_connection_guard._original_connect) or redis.connection.Connection._connect is \
        redis_connection_guard._guarded_connect
    conn = redis.connection.Connection(host="127.0.0.1", port=server.port)
    sock = redis_connection_guard._original_connect(conn)
    try:
        assert isinstance(sock, socket.socket) and sock.getpeername()[1] == server.port, revisit(
            "redis_connection_guard", "Connection._connect no longer returns the connected socket")
        assert (conn.host, conn.port) == ("127.0.0.1", server.port), revisit(
            "redis_connection_guard", "Connection no longer keeps host and port")
    finally:
        sock.close()
    assert "self._connect" in inspect.getsource(redis.connection.AbstractConnection.connect_check_health), revisit(
        "redis_connection_guard", "connect no longer goes through _connect before the handshake")


# -- kombu_restore_outcome -------------------------------------------------------------------------------

def test_kombus_restore_says_restoring_before_it_tries_and_clears_what_it_restored(caplog, monkeypatch):
    import logging

    from kombu.transport.virtual import base

    from stalk.embedded.patches import kombu_restore_outcome

    patch = "kombu_restore_outcome"
    assert base.RESTORING_FMT.startswith("Restoring "), revisit(patch, "kombu's line changed (log_folding drops it)")
    monkeypatch.setattr(base.QoS, "restore_unacked_once", base.QoS.restore_unacked_once)  # undone after
    queue = Queue("canary-restore", Exchange("canary-restore"), "r")
    with Connection("memory://") as conn:
        channel = conn.channel()
        Producer(channel).publish({"x": 1}, exchange=queue.exchange, routing_key="r", declare=[queue])
        assert queue(channel).get(no_ack=False) is not None
        assert len(channel.qos._delivered) == 1, revisit(patch, "QoS._delivered no longer holds the unacked")
        channel.do_restore = True  # the memory transport turns restores off
        kombu_restore_outcome.say_restore_outcome()
        with caplog.at_level(logging.INFO, logger="kombu.transport.virtual.base"):
            channel.qos.restore_unacked_once()
        said = [r.getMessage() for r in caplog.records]
        assert said == ["Restoring 1 unacknowledged message(s)", "Restored 1 unacknowledged message(s)"], \
            revisit(patch, f"restore_unacked_once said {said}")
        assert channel.qos._delivered.restored and not channel.qos._delivered, revisit(patch, "the restored flag")


# -- billiard_pool_shutdown ---------------------------------------------------------------------------


def test_billiard_pool_processes_still_sleep_1s_at_exit_and_prefork_on_stop_still_sleeps():
    """patches/billiard_pool_shutdown.py shortens these two sleeps; if they are gone upstream fixed it."""
    import billiard.pool as pool
    from celery.concurrency import prefork

    do_exit = inspect.getsource(inspect.unwrap(pool.Worker._do_exit))
    assert "self.outq.put((DEATH, (pid, exitcode)))" in do_exit and "time.sleep(1)" in do_exit
    assert do_exit.index("time.sleep(1)") < do_exit.index("os._exit(exitcode)")
    on_stop = inspect.getsource(prefork.TaskPool.on_stop)
    assert "time.sleep(0.5)" in on_stop and "self._pool.join()" in on_stop
    assert "time" in vars(pool) and "time" in vars(prefork)  # the module globals the patch replaces


def test_billiards_receive_ends_a_pool_process_with_a_systemexit_the_patch_recognises():
    """A sentinel (None) on the pool's inqueue: billiard's `receive` raises SystemExit in its own frame,
    which the patch tells apart from a job's own SystemExit."""
    import billiard.pool as pool

    from stalk.embedded.patches.billiard_pool_shutdown import _ended_waiting_for_a_job

    class Inqueue:
        _reader = types.SimpleNamespace(poll=lambda timeout: True)
        get_payload = None

        @staticmethod
        def get() -> None:
            return None  # the sentinel Pool.close sends

    worker = pool.Worker.__new__(pool.Worker)
    worker._shutdown = None
    receive = worker._make_protected_receive(Inqueue())
    with pytest.raises(SystemExit) as sentinel:
        receive()
    assert _ended_waiting_for_a_job(sentinel.value)
    with pytest.raises(SystemExit) as own:
        sys.exit(3)  # a job's own
    assert not _ended_waiting_for_a_job(own.value)
