"""Patches kombu's redis transport for Stalk's own workers on Stalk's own redis: a consume that can lose
nothing, and a record of which worker process holds which message.

Stock kombu waits for a task with BRPOP over the worker's queues, then records the message as unacked
(HSET unacked + ZADD unacked_index) in a second round trip. A worker whose main process dies with a BRPOP
pending loses the first message published after it: redis hands it to the dead socket (AOF: `LPUSH`, `RPOP`,
no `HSET unacked`), and it is in no queue and no unacked table (issue #25, defect 1). Here the pop is one Lua
script (RPOP + HSET unacked + ZADD unacked_index + SADD of this process's held set, atomically): a message
leaves its queue only into the unacked table. Lua cannot block, so the wait is keyspace notifications
(`notify-keyspace-events Kl` in Stalk's redis.conf) on a pub/sub connection of the channel's own: a push
to one of the consumed lists wakes the channel, which runs the script; it also runs it every poll tick at
least once a `brpop_timeout` (1 s), so a missed notification (resubscribing, a server without the
setting) costs latency, never a message.

The held set (`stalk.held:<node>:<pid>`, listed with its process group in the `stalk.holders` hash) names
what this process took and has not acked, rejected or restored. It buys:
- a SIGKILLed worker's messages (running and prefetched) are put back at once by the stack
  (stalk.embedded.requeue, on the supervisor's word that the process group is gone) instead of after the
  visibility timeout (#25 defect 3);
- after the broker connection comes back, the worker itself puts back what it held but no longer runs
  (Celery drops its reserved tasks on a connection loss, and its restore while the broker is down fails):
  the first poll of each new consuming channel restores the held tags that no request of
  `running_tags()` carries (#25 defect 2).

Overrides, in kombu/transport/redis.py: `Channel._brpop_start`, `Channel._brpop_read`, `Channel._poll_error`
and `Channel.close` (private: the poller calls them), `QoS.append`, `QoS.restore_unacked` (a closing
channel leaves the messages of tasks still running for their ack) and `QoS._remove_from_indices` (private),
and `MultiChannelPoller.on_poll_start` / `on_readable`; reads `_queue_cycle`, `_q_for_pri`,
`priority_steps`, `_in_poll`, `_brpop_sent_at`, `_flush_brpop_reauth`, `_fd_to_chan`, `_chan_to_sock`,
`poller` and `eventflags`. The unacked entry written by the script is kombu's own (`[payload, exchange,
routing_key]`), so kombu's ack, reject, restore_by_tag and visibility sweep, and any plain worker on the
same redis, read it as theirs; a no_ack consumer's message is removed from it at once. Written against
kombu 5.7.0 and redis-py 8.2.0; tests/test_upstream_canaries.py checks the names and shapes.

Measured (bench/reliable_consume.py, bench/RESULTS.md 2026-12-07): an idle consumer gets a message ~0.1 ms
later than with BRPOP (0.79 vs 0.69 ms: the notification, then the script); a busy one drains 12-13% faster
(no separate HSET/ZADD round trip). Lost in the focused repro (tests/test_faults_reliable.py: three idle
main-process SIGKILLs with a publish right after each): 1 of 26 before, 0 after.

Used only by `stalk worker` children on Stalk's own redis (`consume_reliably`, when the stack in "redis"
mode sets children.RELIABLE_ENV): plain `celery worker`s on the same redis keep kombu's stock BRPOP and
can still lose a message when SIGKILLed idle; Stalk's clients keep kombu_redis_channel.

If removed: Stalk's workers use kombu_redis_channel's stock BRPOP again: a worker main process SIGKILLed
while idle can lose an acknowledged submission for good, a dead worker's messages wait the visibility
timeout (3,600 s by default), and a broker restart strands every worker's prefetched messages as long.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from time import monotonic, time
from typing import Any

from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import loads

from stalk.embedded.patches.kombu_redis_channel import NAME as FAST_NAME
from stalk.embedded.patches.kombu_redis_channel import Channel as FastChannel
from stalk.embedded.patches.kombu_redis_channel import Transport as FastTransport

NAME = f"{__name__}:Transport"  # for Celery's broker_transport setting
HOLDERS = "stalk.holders"  # hash: held-set key -> process group id of the worker that fills it
HELD_PREFIX = "stalk.held:"
NOTIFY = "NOTIFY"  # the poller's type for the keyspace-notification connection
WAKE_EVENTS = frozenset({b"lpush", b"rpush", b"linsert"})  # a list gained an element
NOTIFY_RETRY = 5.0  # seconds before subscribing again after a failure (the 1 s poll pops meanwhile)

# Connection URLs (the worker's "Connected to ..." line, its banner, Flower) name the scheme, not this path.
kombu_connection.resolve_aliases[NAME] = "redis"

# KEYS: the queue keys in kombu's BRPOP order, then unacked, unacked_index, the held set.
# ARGV: the time (the index score, as kombu's QoS.append writes it). Returns {key, message} or nil.
POP_INTO_UNACKED = """
local n = #KEYS - 3
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, msg = pcall(cjson.decode, item)
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' and msg.properties.delivery_tag then
      local props = msg.properties
      local info = type(props.delivery_info) == 'table' and props.delivery_info or {}
      local ex, rk = info.exchange or '', info.routing_key or ''
      if type(ex) ~= 'string' then ex = '' end
      if type(rk) ~= 'string' then rk = '' end
      local tag = tostring(props.delivery_tag)
      redis.call('HSET', KEYS[n + 1], tag, '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
      redis.call('SADD', KEYS[n + 3], tag)
    end
    return {KEYS[i], item}
  end
end
return nil
"""


def held_key(holder: str, pid: int) -> str:
    return f"{HELD_PREFIX}{holder}:{pid}"


def holder_of(key: str) -> tuple[str, int] | None:
    """(node name, pid) of a held-set key, None if it is not one."""
    if not key.startswith(HELD_PREFIX):
        return None
    node, _, pid = key[len(HELD_PREFIX):].rpartition(":")
    return (node, int(pid)) if pid.isdigit() and node else None


def _no_running_tags() -> set[str]:
    return set()


class QoS(kombu_redis.QoS):
    """The script already wrote the unacked entry; an ack, reject or restore also leaves the held set."""

    def append(self, message: Any, delivery_tag: str) -> None:
        recorded = self.channel._recorded
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def restore_unacked(self, client: Any = None) -> Any:
        """On a closing channel (a lost connection), leave the messages of tasks still running unacked: each is
        acked when its task finishes (kombu_redis_channel keeps the channel able to), where restoring it
        would run it twice."""
        running = self.channel.running_tags()
        delivered: Any = self._delivered  # kombu's dict of tag -> message (typed None on the class)
        for tag in [t for t in delivered if str(t) in running]:
            delivered.pop(tag, None)
        return super().restore_unacked(client)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        return super()._remove_from_indices(delivery_tag, pipe).srem(self.channel.held_key, delivery_tag)


class Channel(FastChannel):
    """Pops with POP_INTO_UNACKED when woken by a keyspace notification or a poll tick."""

    QoS = QoS
    from_transport_options = (*FastChannel.from_transport_options, "stalk_holder")  # type: ignore[assignment]
    stalk_holder: str | None = None  # the worker's node name (transport option), else the host name
    #: The delivery tags of the messages this process is running now (set by `stalk worker`).
    running_tags: Callable[[], set[str]] = staticmethod(_no_running_tags)

    _wake = True
    _next_poll = 0.0
    _notify: Any = None  # redis-py PubSub on the async pool
    _notify_channels: frozenset[str] = frozenset()
    _notify_retry_at = 0.0
    _held_checked = False  # this channel has put back what the process held before it existed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._recorded: set[str] = set()
        super().__init__(*args, **kwargs)
        self.handlers[NOTIFY] = self._notify_read

    @property
    def held_key(self) -> str:
        return held_key(self.stalk_holder or socket.gethostname(), os.getpid())

    # -- popping -----------------------------------------------------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not (self._wake or monotonic() >= self._next_poll):
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if not self._held_checked:
            self._held_checked = True
            self.restore_held_not_running()
        self._wake = False
        self._next_poll = monotonic() + (self.brpop_timeout or 1)
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        keys += [self.unacked_key, self.unacked_index_key, self.held_key]
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        connection.send_command("EVAL", POP_INTO_UNACKED, len(keys), *keys, time())

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVAL", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                raise kombu_redis.Empty()
            dest, item = reply
            payload = loads(item.decode() if isinstance(item, bytes) else item)
            tag = (payload.get("properties") or {}).get("delivery_tag")
            if tag is not None:
                self._recorded.add(str(tag))
            dest = (dest.decode() if isinstance(dest, bytes) else dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            self._wake = True  # there may be more: pop again at the next tick (credit permitting)
            self.connection._deliver(payload, dest)
            if tag is not None and str(tag) in self._recorded:  # a no_ack consumer took it: no ack will come
                self._recorded.discard(str(tag))
                self.qos._remove_from_indices(str(tag)).execute()
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _poll_error(self, type: str, **options: Any) -> None:
        if type == NOTIFY:
            self._drop_notify()
        elif type == "BRPOP":
            self.client.parse_response(self.client.connection, "EVAL")
        else:
            super()._poll_error(type, **options)

    # -- waking: keyspace notifications --------------------------------------------------------

    def wanted_notifications(self) -> frozenset[str]:
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return frozenset(f"__keyspace@{db}__:{self._q_for_pri(queue, pri)}"
                         for queue in self.active_queues for pri in self.priority_steps)

    def sync_notify(self) -> Any:
        """Subscribe (or re-subscribe) to the consumed lists' notifications; the PubSub, or None when
        it cannot be had now (the poll tick still pops)."""
        wanted = self.wanted_notifications()
        if self._notify is not None and (self._notify.connection is None or self._notify.connection._sock is None):
            self._drop_notify()  # disconnected (kombu's disconnect hook already unregistered it)
        if self._notify is None and monotonic() < self._notify_retry_at:
            return None
        try:
            if self._notify is None:
                self._notify = self._create_client(asynchronous=True).pubsub(ignore_subscribe_messages=True)
                self._notify_channels = frozenset()
            added, gone = wanted - self._notify_channels, self._notify_channels - wanted
            if added:
                self._notify.subscribe(*sorted(added))
            if gone:
                self._notify.unsubscribe(*sorted(gone))
        except Exception:  # down, or refused (an ACL without the channels): the poll tick pops meanwhile
            self._drop_notify()
            self._notify_retry_at = monotonic() + NOTIFY_RETRY
            return None
        if added:
            self._wake = True  # a push before the subscription took effect sent no notification
        self._notify_channels = wanted
        return self._notify

    def _notify_read(self) -> None:
        notify = self._notify
        if notify is None:
            return
        try:
            while notify.connection is not None and notify.connection.can_read(timeout=0):
                response = notify.parse_response(block=False, timeout=0)
                if response is None:
                    break
                message = notify.handle_message(response, ignore_subscribe_messages=True)
                if message and message.get("data") in WAKE_EVENTS:
                    self._wake = True
        except self.connection_errors:
            self._drop_notify()

    def _drop_notify(self) -> None:
        notify, self._notify, self._notify_channels = self._notify, None, frozenset()
        self._wake = True
        if notify is not None:
            try:
                notify.close()
            except Exception:  # closing a broken connection
                pass

    def close(self) -> None:
        self._drop_notify()
        super().close()

    # -- what this process held before this channel --------------------------------------------

    def restore_held_not_running(self) -> int:
        """Put back every message this process took on an earlier channel and no longer runs (a broker
        restart or connection loss made Celery drop its reserved tasks); register the held set."""
        client = self.client
        key = self.held_key
        try:
            client.hset(HOLDERS, key, os.getpgid(0))
            tags = {t.decode() if isinstance(t, bytes) else t for t in client.smembers(key)}
        except self.connection_errors:
            self._held_checked = False
            raise
        stale = tags - self.running_tags() - set(self.qos._delivered)
        for tag in stale:
            self.qos.restore_by_tag(tag, client=client)
        if stale:
            kombu_redis.logger.warning("Restored %d message(s) this worker held when its broker connection "
                                       "was lost", len(stale))
        return len(stale)


class Poller(kombu_redis.MultiChannelPoller):
    """Registers each reliable channel's notification connection; reads it whatever the prefetch credit."""

    def on_poll_start(self) -> None:
        super().on_poll_start()
        for channel in self._channels:
            if isinstance(channel, Channel) and channel.active_queues:
                self._register_notify(channel)

    def _register_notify(self, channel: Channel) -> None:
        notify = channel.sync_notify()
        self._forget_other(channel, notify)  # a dropped PubSub's registration
        if notify is None or notify.connection is None or notify.connection._sock is None:
            return
        ident = (channel, notify, NOTIFY)
        sock = notify.connection._sock
        if self._chan_to_sock.get(ident) is sock:
            return
        self._fd_to_chan[sock.fileno()] = (channel, NOTIFY)
        self._chan_to_sock[ident] = sock
        self.poller.register(sock, self.eventflags)

    def _forget_other(self, channel: Channel, keep: Any) -> None:
        for ident in [i for i in self._chan_to_sock if i[0] is channel and i[2] == NOTIFY and i[1] is not keep]:
            sock = self._chan_to_sock.pop(ident)
            for fd, entry in list(self._fd_to_chan.items()):
                if entry == (channel, NOTIFY) and (keep is None or fd != _fileno(keep)):
                    del self._fd_to_chan[fd]
                    try:
                        self._unregister_from_poll(fd)
                    except (KeyError, ValueError, OSError):
                        pass
            del sock

    def on_readable(self, fileno: int) -> Any:
        entry = self._fd_to_chan.get(fileno)
        if entry is not None and entry[1] == NOTIFY:
            entry[0]._notify_read()
            return None
        return super().on_readable(fileno)


def _fileno(notify: Any) -> int | None:
    sock = notify.connection._sock if notify.connection is not None else None
    return sock.fileno() if sock is not None else None


class Transport(FastTransport):
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = Poller()  # type: ignore[assignment]


def consume_reliably(app: Any, node: str | None) -> bool:
    """Make `app` (a `stalk worker`'s, before it starts) consume with this transport; False (nothing
    changed) when it does not use kombu_redis_channel (the user's own transport, rediss://)."""
    if app.conf.broker_transport != FAST_NAME:
        return False
    options = dict(app.conf.broker_transport_options or {})
    if node:
        options["stalk_holder"] = node
    app.conf.update(broker_transport=NAME, broker_transport_options=options)
    app.amqp.Connection = _keeping_transport(app.amqp.Connection)
    Channel.running_tags = staticmethod(_celery_running_tags)
    return True


def _keeping_transport(base: type) -> type:
    """`base` (Celery's `app.amqp.Connection`), except that a `redis+socket://` URL keeps this transport:
    kombu takes a `+` URL's transport from its prefix (`redis`) over the `transport` it is given (see
    kombu_redis_channel.SocketConnection, which does the same for that transport)."""

    class Connection(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if kwargs.get("transport") == NAME and self.uri_prefix == "redis":
                self.transport_cls = NAME

    return Connection


def _celery_running_tags() -> set[str]:
    """Delivery tags of the requests this worker runs now (celery.worker.state.active_requests)."""
    from celery.worker.state import active_requests

    tags = set()
    for request in tuple(active_requests):
        message = getattr(request, "message", None)
        if message is not None and message.delivery_tag is not None:
            tags.add(str(message.delivery_tag))
    return tags
