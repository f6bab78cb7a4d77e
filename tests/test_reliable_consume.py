"""The pieces of issue #25's fixes, on the embedded broker (a real redis-protocol server, Lua included):
a worker process puts back what it held on a lost connection (defect 2), and the stack requeues what a dead
worker process held (defect 3), only that. The end-to-end reproductions are tests/test_faults_reliable.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from stalk.embedded.patches import kombu_redis_reliable
from stalk.embedded.patches.kombu_redis_reliable import HOLDERS, held_key
from stalk.embedded.requeue import gone, requeue_dead

from .conftest import server_url

HOLDER = "test@host"
QUEUE = Queue("held", Exchange("held"), "held")


@contextlib.contextmanager
def consuming(server: Any, running: set[str] | None = None) -> Iterator[tuple[Connection, list]]:
    """A reliable consumer of QUEUE in this process; `running`: what the process says it still runs."""
    got: list = []
    saved = kombu_redis_reliable.Channel.__dict__["running_tags"]  # the staticmethod itself
    kombu_redis_reliable.Channel.running_tags = staticmethod(lambda: set(running or ()))
    try:
        with Connection(server_url(server), transport=kombu_redis_reliable.Transport,
                        transport_options={"stalk_holder": HOLDER}) as conn, \
                conn.Consumer(QUEUE, callbacks=[lambda _body, message: got.append(message)], accept=["json"]):
            yield conn, got
    finally:
        kombu_redis_reliable.Channel.running_tags = saved


def drain_until(conn: Connection, got: list, n: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(got) < n and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError, socket.timeout):
            conn.drain_events(timeout=0.3)
    assert len(got) >= n, f"{len(got)} of {n} delivered"


def publish(conn: Connection, body: dict) -> None:
    conn.Producer().publish(body, exchange=QUEUE.exchange, routing_key="held", declare=[QUEUE], serializer="json")


def lose_connection(conn: Connection) -> None:
    """What a broker kill leaves: the channel closes and its restore of the unacked messages fails."""
    conn.default_channel.do_restore = False


@pytest.mark.parametrize("still_running", [False, True])
def test_a_new_channel_puts_back_what_the_process_held_and_no_longer_runs(server, still_running):
    with consuming(server) as (conn, got):
        publish(conn, {"n": 1})
        drain_until(conn, got, 1)
        tag = got[0].delivery_tag
        lose_connection(conn)
    client = Connection(server_url(server)).default_channel.client
    assert client.hget("unacked", tag) is not None  # stranded until the visibility timeout, without the fix
    with consuming(server, running={tag} if still_running else set()) as (conn, got):
        if still_running:  # a task that ran on through the outage is acked later: not restored
            with contextlib.suppress(AssertionError):
                drain_until(conn, got, 1, within=2.0)
            assert not got and client.hget("unacked", tag) is not None
        else:
            drain_until(conn, got, 1)
            assert got[0].delivery_tag == tag and got[0].delivery_info.get("redelivered")
            got[0].ack()
    assert bool(client.sismember(held_key(HOLDER, os.getpid()), tag)) is still_running


def test_the_stack_requeues_only_what_dead_workers_held(server):
    app = Celery("requeue-test", broker=server_url(server), set_as_current=False)
    with consuming(server) as (conn, got):
        publish(conn, {"n": 1})
        drain_until(conn, got, 1)
        lose_connection(conn)
    client = Connection(server_url(server)).default_channel.client
    mine = held_key(HOLDER, os.getpid())
    client.hset(HOLDERS, "stalk.held:other@host:999999", 999999)  # a live worker's set: never touched
    client.sadd("stalk.held:other@host:999999", "other-tag")
    done = requeue_dead(app, client, is_gone=lambda pid, _pgid: pid == os.getpid())
    assert [(d.node, d.pid) for d in done] == [(HOLDER, os.getpid())]
    assert client.llen("held") == 1 and not client.hexists("unacked", got[0].delivery_tag)
    assert not client.exists(mine) and not client.hexists(HOLDERS, mine)
    assert client.sismember("stalk.held:other@host:999999", "other-tag")


def test_a_closing_channel_leaves_the_messages_of_running_tasks_for_their_ack(server):
    """A lost connection that the broker survives: kombu restores what the channel held on close; the
    message of a task still running stays unacked (its ack comes when it finishes), others go back."""
    with consuming(server) as (conn, got):
        publish(conn, {"n": 1})
        publish(conn, {"n": 2})
        drain_until(conn, got, 2)
        running, prefetched = got[0].delivery_tag, got[1].delivery_tag
        kombu_redis_reliable.Channel.running_tags = staticmethod(lambda: {running})
    client = Connection(server_url(server)).default_channel.client
    assert client.hexists("unacked", running) and client.sismember(held_key(HOLDER, os.getpid()), running)
    assert not client.hexists("unacked", prefetched) and client.llen("held") == 1


def test_a_no_ack_consumer_leaves_nothing_unacked(server):
    """A reply queue (Celery's control replies) is consumed with no_ack: what the Lua pop recorded is
    removed at once, as BRPOP would have left nothing (no restore of a reply an hour later)."""
    got: list = []
    with Connection(server_url(server), transport=kombu_redis_reliable.Transport,
                    transport_options={"stalk_holder": HOLDER}) as conn, \
            conn.Consumer(QUEUE, callbacks=[lambda _body, message: got.append(message)], accept=["json"],
                          no_ack=True):
        publish(conn, {"n": 1})
        drain_until(conn, got, 1)
        client = conn.default_channel.client
        assert not client.hexists("unacked", got[0].delivery_tag)
        assert not client.sismember(held_key(HOLDER, os.getpid()), got[0].delivery_tag)


@pytest.mark.procs
def test_a_worker_is_gone_once_its_group_has_exited_zombies_included():
    """A dead worker's pool processes may stay zombies where PID 1 does not reap orphans: gone all the same."""
    assert not gone(os.getpid(), os.getpgid(0))
    child = subprocess.Popen(["sleep", "0"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not gone(child.pid, child.pid) and time.monotonic() < deadline:  # exited, not reaped: a zombie
            time.sleep(0.05)
        assert gone(child.pid, child.pid)
    finally:
        child.wait()
