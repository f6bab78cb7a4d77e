"""Patches kombu's redis transport: one redis-py client per connection pool instead of one per operation,
and a channel that still reaches the broker after Celery has detached its transport.

Overrides, in kombu/transport/redis.py, `Channel._create_client` (private: `conn_or_acquire` and
`pipe_or_acquire` call it with no client for every publish, ack and unacked-table update),
`Channel._connparams` (private: reads `self.connection.client`) and `Channel.close`; reads
`Channel.pool`. Registers its dotted name in `kombu.connection.resolve_aliases` (kombu/connection.py)
so that connection URLs still read redis://. Used as Celery's `broker_transport` on redis:// brokers
(stalk.embedded.celery_app, `REDIS_TRANSPORT`); a user's own `broker_transport` is left alone.
On a `redis+socket://` URL (Stalk's own broker on a Unix socket) kombu's `Connection.__init__` takes the
transport from the URL's prefix (`redis`) whatever `broker_transport` says; `use_socket_connections(app)`
gives the app (Celery's `app.amqp.Connection`, which `app._connection` builds every connection with, and
`Connection.clone` re-creates through `self.__class__`) a Connection that keeps the transport asked for,
and whose `Pool()` (Celery's `app.pool`: kombu's `pools.connections` calls it; the producer pool every
`send_task` publishes through takes its connections there) overrides `ConnectionPool.new`, which builds
kombu's own `PooledConnection` from the connection's `_info(resolve=False)` and so the stock transport.

Written against kombu 5.7.0, Celery 5.7.0 and redis-py 8.2.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks the overridden names and both upstream behaviours below.

What it buys:
- CPU: kombu's Channel builds a new `redis.Redis` per operation, and since redis-py 5 each construction
  copies a table of ~250 response callbacks into a case-insensitive dict: a fifth of a Celery worker's
  main-process CPU per no-op task (0.60 -> 0.47-0.50 ms a task, bench/RESULTS.md 2026-11-27), a tenth
  of a client's. A `redis.Redis` on a connection pool takes a connection from the pool per command, so
  one client per pool is safe to share between threads, as the stock transport already does for its
  asynchronous client. End to end (bench/stack_throughput.py) the same day: 0.92-1.15x with it,
  0.98-1.00x with `--stock-transport` on that machine, 0.89-0.90x without it on a slower one.
- On Stalk's own broker (`redis+socket://`) the pools' half of this went missing until 2026-12-08: every
  send through Celery's producer pool ran the stock transport (a new `redis.Redis` per publish, ~6% of the
  stack process's samples under Flower async-apply load; bench/RESULTS.md 2026-12-08, "per-send costs").
- Workers ride out a broker restart (README "Broker modes", tests/test_faults_broker.py): on kombu
  5.7 / Celery 5.7 a plain worker holding an unacked message when the broker goes away exits with
  "Unrecoverable error: AttributeError('NoneType' object has no attribute 'hostname')" and the task runs
  again after the visibility timeout (details at `_connparams` below).

The wire format is unchanged: plain Celery workers and clients on the same broker interoperate.

If removed: Stalk's processes run kombu's stock transport (what `bench/stack_throughput.py
--stock-transport` measures): the CPU above comes back, a worker holding a message exits on a broker
restart (the task runs again after the visibility timeout), and celery_send_task_message, which is
keyed on this transport's name, never applies.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis

NAME = f"{__name__}:Transport"  # for Celery's broker_transport setting
# Connection URLs (the worker's "Connected to ..." line, its banner, Flower) name the scheme, not this path.
kombu_connection.resolve_aliases[NAME] = "redis"


class Channel(kombu_redis.Channel):
    """Caches the synchronous client; a new pool (the channel reconnected) gets a new one."""

    _sync_client: Any = None
    _sync_params: dict[str, Any] | None = None  # what the synchronous pool last connected with

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client

    def close(self) -> None:
        self._sync_client = None
        super().close()

    def _connparams(self, asynchronous: bool = False) -> Any:
        """When the broker goes away, Celery's consumer detaches the transport from its connection and
        then closes the old channel, whose unacked messages still need a client: to be restored on
        close, and to be acked when a task that ran on through the outage finishes. Stock kombu builds
        that client from the detached transport and raises AttributeError ('NoneType' object has no
        attribute 'hostname'); Celery calls it unrecoverable and the worker exits instead of
        reconnecting, and the finished task's message stays unacked until the visibility timeout
        delivers it again. The channel keeps the parameters it connected with and uses them then."""
        if self.connection is not None and self.connection.client is not None:
            params = super()._connparams(asynchronous)
            if not asynchronous:
                self._sync_params = params
            return params
        if self._sync_params is None:
            raise redis.exceptions.ConnectionError("the connection to the broker is closed")
        return dict(self._sync_params)


class Transport(kombu_redis.Transport):
    Channel = Channel



def _keep_transport(conn: kombu_connection.Connection, asked: Any) -> None:
    """kombu takes a `+` URL's transport from its prefix (`redis`: the stock transport) over the one asked for."""
    if asked == NAME and conn.uri_prefix == "redis" and conn.transport_cls == "redis":
        conn.transport_cls = NAME


class SocketConnection(kombu_connection.Connection):
    """kombu's Connection, except that a `redis+socket://` URL keeps the transport it was asked for, and so do
    the connections of its pools (Celery's `app.pool`, which its producer pool publishes every send through)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _keep_transport(self, kwargs.get("transport"))

    def Pool(self, limit: int | None = None, **kwargs: Any) -> kombu_connection.ConnectionPool:  # noqa: N802 - kombu's
        return SocketConnectionPool(self, limit=limit, **kwargs)


class SocketPooledConnection(kombu_connection.PooledConnection):
    def __init__(self, pool: Any, **kwargs: Any) -> None:
        super().__init__(pool, **kwargs)
        _keep_transport(self, kwargs.get("transport"))


class SocketConnectionPool(kombu_connection.ConnectionPool):
    """kombu's ConnectionPool builds each connection as a `PooledConnection` (kombu's own class, not the
    pool's connection's), from the connection's `_info(resolve=False)`: a `redis+socket://` one would
    publish on the stock transport."""

    def new(self) -> kombu_connection.PooledConnection:
        return SocketPooledConnection(self, **dict(self.connection._info(resolve=False)))


def use_socket_connections(app: Any) -> None:
    """`app`'s connections (Celery's `app.amqp.Connection`) on a `redis+socket://` broker use this transport."""
    app.amqp.Connection = SocketConnection
