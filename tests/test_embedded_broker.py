"""The embedded broker (fakeredis behind Stalk's own loopback server): requirepass, loopback only, and
the redis behaviour Celery leans on (pipelines, blocking pops, pub/sub pushes) over real TCP."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stalk.embedded.broker.auth_gate import (
    NOAUTH,
    WRONGPASS,
    AuthGate,
    ProtocolError,
    encode_command,
    parse_command,
)
from stalk.embedded.broker.fake_server import EmbeddedRedisServer
from stalk.embedded.patches import fakeredis_tcp_server

from .conftest import SERVER_PASSWORD as PASSWORD
from .conftest import server_url, wait_until
from .test_faults import _non_loopback_addresses

pytestmark = pytest.mark.procs


def client(server, **kw) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0), **kw)


def raw_exchange(server, payload: bytes, expect: int) -> bytes:
    """Send `payload` on a bare socket and read until `expect` bytes (or the server closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < expect:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


# -- authentication -------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_unauthenticated_client_is_refused(server, protocol):
    with pytest.raises(redis.AuthenticationError):
        client(server, protocol=protocol).set("k", "v")
    assert client(server, password=PASSWORD).get("k") is None


def test_unauthenticated_commands_get_noauth_and_change_nothing(server):
    payload = encode_command([b"SET", b"k", b"v"]) + b"PING\r\n"
    assert raw_exchange(server, payload, 2 * len(NOAUTH)) == NOAUTH * 2
    assert client(server, password=PASSWORD).get("k") is None


@pytest.mark.parametrize("protocol", [2, 3])
def test_wrong_password_is_refused(server, protocol):
    with pytest.raises(redis.AuthenticationError, match="invalid username-password"):
        client(server, password="wrong", protocol=protocol).ping()
    with pytest.raises(redis.AuthenticationError):
        client(server, username="someone", password=PASSWORD, protocol=protocol).ping()


@pytest.mark.parametrize("protocol", [2, 3])
def test_right_password_works(server, protocol):
    c = client(server, password=PASSWORD, protocol=protocol)
    assert c.set("k", "v") is True
    assert c.get("k") == b"v"
    assert c.hgetall("missing") == {}


def test_commands_pipelined_after_auth_in_one_packet_all_run(server):
    payload = (encode_command([b"AUTH", b"wrong"]) + encode_command([b"AUTH", PASSWORD.encode()])
               + encode_command([b"SET", b"k", b"v"]) + encode_command([b"GET", b"k"]))
    head = WRONGPASS + b"+OK\r\n+OK\r\n"
    got = raw_exchange(server, payload, len(head) + len(b"+v\r\n"))
    assert got.startswith(head) and got.endswith(b"v\r\n")  # fakeredis sends GET's value as +v, redis as $1


def test_quit_before_auth_closes(server):
    assert raw_exchange(server, b"QUIT\r\n", 100) == b"+OK\r\n"


def test_garbage_closes_only_that_connection(server):
    assert raw_exchange(server, b"*1\r\nnot-a-bulk\r\n", 100) == b"-ERR Protocol error: expected '$'\r\n"
    assert client(server, password=PASSWORD).ping() is True


# -- loopback only --------------------------------------------------------------------------------

def test_listens_on_loopback_only(server):
    assert server._server.server_address[0] == "127.0.0.1"
    for address in _non_loopback_addresses():
        with pytest.raises(OSError):
            socket.create_connection((address, server.port), timeout=2).close()


def test_stop_releases_the_port():
    srv = EmbeddedRedisServer(0, PASSWORD)
    srv.start()
    port = srv.port
    srv.stop()
    again = EmbeddedRedisServer(port, PASSWORD)
    again.start()
    try:
        assert redis.Redis(port=port, password=PASSWORD).ping() is True
    finally:
        again.stop()


# -- what Celery relies on ----------------------------------------------------------------------

def test_multi_exec_pipeline(server):
    c = client(server, password=PASSWORD)
    assert c.pipeline().zadd("idx", {"a": 1.5}).hset("h", "a", "x").execute() == [1, 1]
    assert c.pipeline().zrem("idx", "a").hdel("h", "a").execute() == [1, 1]


def test_blocking_pop_wakes_on_push(server):
    waiter, pusher = client(server, password=PASSWORD), client(server, password=PASSWORD)
    got = []
    thread = threading.Thread(target=lambda: got.append(waiter.brpop(["q1", "q2"], timeout=10)))
    thread.start()
    pusher.lpush("q2", "job")
    thread.join(15)
    assert got == [(b"q2", b"job")]
    assert waiter.brpop(["q1"], timeout=1) is None


@pytest.mark.parametrize("protocol", [2, 3])
def test_published_messages_are_pushed_to_subscribers(server, protocol, monkeypatch):
    """Pushed, not picked up by a poll: with the idle poll made longer than the test, only the
    wake-up pipe can deliver them in time."""
    monkeypatch.setattr(fakeredis_tcp_server, "IDLE_CHECK", 60)
    pubsub = client(server, password=PASSWORD, protocol=protocol).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("results")
    pubsub.psubscribe("/0.celeryev/*")
    publisher = client(server, password=PASSWORD)
    # subscribe() does not wait for the server's answer: until the server has it, a publish reaches nobody
    # (returns 0, nothing delivered), so publish until one is delivered.
    wait_until(lambda: publisher.publish("results", "r1") == 1, timeout=10)
    wait_until(lambda: publisher.publish("/0.celeryev/task.sent", "e1") == 1, timeout=10)
    messages, deadline = [], time.monotonic() + 10
    while len(messages) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)  # None for the (ignored) subscribe confirmations too
        if message is not None:
            messages.append((message["channel"], message["data"]))
    assert messages == [(b"results", b"r1"), (b"/0.celeryev/task.sent", b"e1")]
    pubsub.close()


def test_large_values_round_trip(server):
    c = client(server, password=PASSWORD)
    blob = b"x" * (4 << 20)
    c.set("big", blob)
    assert c.get("big") == blob


def test_many_clients_at_once(server):
    errors = []

    def work(i: int) -> None:
        try:
            c = client(server, password=PASSWORD)
            for j in range(50):
                c.rpush(f"list{i}", j)
            assert c.llen(f"list{i}") == 50
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


# -- the gate on its own ----------------------------------------------------------------------------

def test_parse_command_waits_for_whole_requests():
    whole = encode_command([b"SET", b"key", b"va\r\nlue"])
    for cut in range(len(whole)):
        assert parse_command(whole[:cut]) == (None, 0)
        assert parse_command(b"xx\n" + whole[:cut], 3) == (None, 3)
    assert parse_command(whole + b"*1") == ([b"SET", b"key", b"va\r\nlue"], len(whole))
    assert parse_command(b"PING extra\r\nrest") == ([b"PING", b"extra"], 12)
    with pytest.raises(ProtocolError):
        parse_command(b"*1\r\n$-5\r\n")


def test_gate_opens_only_on_the_right_password_and_forwards_the_rest():
    gate = AuthGate(b"pw")
    hello = encode_command([b"HELLO", b"3", b"AUTH", b"default", b"pw"])
    reply, forward, close = gate.feed(encode_command([b"GET", b"k"]) + hello[:7])
    assert (reply, forward, close, gate.open) == (NOAUTH, b"", False, False)
    reply, forward, close = gate.feed(hello[7:] + b"*1\r\n$4\r\nPI")
    assert (reply, forward, close, gate.open) == (b"", hello + b"*1\r\n$4\r\nPI", False, True)


def test_gate_drops_an_endless_unauthenticated_request():
    gate = AuthGate(b"pw")
    reply, forward, close = gate.feed(b"*1\r\n$400000000\r\n" + b"x" * (2 << 20))
    assert (reply, forward, close) == (b"-ERR Protocol error: unauthenticated bulk length\r\n", b"", True)


# -- a whole stack on it ------------------------------------------------------------------------------

def test_stack_runs_a_burst_of_tasks_on_the_embedded_broker(running_stack):
    """Hundreds of tasks in flight at once: pipelined acks, result pushes and events all interleave."""
    stack = running_stack(broker={"mode": "embedded"}, beat=False)
    results = [stack.app.send_task("demo.add", (i, i)) for i in range(300)]
    assert [r.get(timeout=60) for r in results] == [2 * i for i in range(300)]


def test_a_purge_names_the_tasks_it_deletes_on_every_priority_list(server):
    """What a purge reads and deletes in one MULTI (control.queues._redis_purge), on the embedded broker:
    Celery messages put there by a real publisher, one of them on a priority list."""
    from celery import Celery

    from stalk.embedded.control.queues import purge_messages

    app = Celery("purge", broker=server_url(server), set_as_current=False)
    app.conf.broker_transport_options = {"queue_order_strategy": "priority"}
    ids = [app.send_task("x.add", (i,), queue="parked", priority=priority).id for i, priority in enumerate((0, 9))]
    client(server, password=PASSWORD).rpush("parked", b"not json")  # a stray value: counted, no id
    purged = purge_messages(app, "parked")
    assert (purged.count, sorted(purged.ids or ())) == (3, sorted(ids))
    assert purge_messages(app, "parked").count == 0
