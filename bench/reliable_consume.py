"""What Stalk's reliable consume (embedded/patches/kombu_redis_reliable.py) costs a message: publish ->
consumer callback latency on an idle consumer, and a drain rate of a full queue, against the BRPOP
consume it replaces (kombu_redis_channel), on one redis-server with `notify-keyspace-events Kl`.

An idle consumer of the reliable transport is woken by a keyspace notification and then runs the Lua pop:
one round trip more than BRPOP's reply; a busy one pops and records in one script, where BRPOP is followed
by a separate HSET/ZADD pipeline (one round trip less).

    .venv/bin/python bench/reliable_consume.py [--messages 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import machine
from kombu import Connection, Exchange, Queue

from stalk.embedded.patches import kombu_redis_channel, kombu_redis_reliable

QUEUE = Queue("bench-reliable", Exchange("bench-reliable"), "bench-reliable")
TRANSPORTS = {"brpop": kombu_redis_channel.Transport, "reliable": kombu_redis_reliable.Transport}


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="stalk-bench-"))
    path = directory / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(path), "--save", "",
                             "--appendonly", "no", "--notify-keyspace-events", "Kl"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"redis+socket://{path}"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def connection(url: str, name: str) -> Connection:
    conn = Connection(url, transport=TRANSPORTS[name])
    conn.transport_cls = TRANSPORTS[name]  # a `+` URL would pick kombu's stock transport
    return conn


def drain(conn: Connection, got: list, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError, socket.timeout):
            conn.drain_events(timeout=1)


def idle_latency(url: str, name: str, messages: int) -> list[float]:
    """ms from publish to the consumer's callback, one message at a time (the consumer waits idle)."""
    latencies: list[float] = []
    got: list = []
    with connection(url, name) as conn, connection(url, "brpop") as pub, \
            conn.Consumer(QUEUE, callbacks=[lambda _b, m: (got.append(time.perf_counter()), m.ack())],
                          accept=["json"]):
        producer = pub.Producer()
        producer.publish({}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key, declare=[QUEUE])
        drain(conn, got, 1)
        for i in range(messages):
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.002)  # the consumer is waiting when the message arrives
            sent = time.perf_counter()
            producer.publish({}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key)
            drain(conn, got, i + 2)
            latencies.append((got[-1] - sent) * 1000)
    return latencies


def drain_rate(url: str, name: str, messages: int) -> float:
    """Messages/s consumed (and acked) from a queue holding `messages`."""
    got: list = []
    with connection(url, "brpop") as pub:
        producer = pub.Producer()
        for _ in range(messages):
            producer.publish({}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key, declare=[QUEUE])
    with connection(url, name) as conn, conn.Consumer(QUEUE, callbacks=[lambda _b, m: (got.append(1), m.ack())],
                                                      accept=["json"]):
        start = time.perf_counter()
        drain(conn, got, messages)
        return len(got) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"reliable consume vs BRPOP, {args.messages} messages x {args.rounds} rounds, {machine()}")
    latency: dict[str, list[float]] = {name: [] for name in TRANSPORTS}
    rate: dict[str, list[float]] = {name: [] for name in TRANSPORTS}
    with redis_server() as url:
        for _ in range(args.rounds):
            for name in TRANSPORTS:
                latency[name] += idle_latency(url, name, args.messages)
                rate[name].append(drain_rate(url, name, args.messages))
    for name in TRANSPORTS:
        lat = sorted(latency[name])
        print(f"  {name:9} idle publish->callback ms: median {statistics.median(lat):.3f}  "
              f"p90 {lat[int(len(lat) * 0.9)]:.3f}   drain msgs/s median {statistics.median(rate[name]):.0f}")


if __name__ == "__main__":
    main()
