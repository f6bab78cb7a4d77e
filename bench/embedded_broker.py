"""No-op tasks/s end to end (send -> result, events on): the embedded broker vs Stalk's own redis-server.

Each round starts one Stack per broker mode (same app, pool and concurrency), warms it up, times
`--tasks` no-op tasks, and stops it. Events are on in both (workers send task events, the client
sends task-sent events) and are consumed in this process: by the stack's own event store, or by a
plain receiver when the stack has none.
The embedded server runs in this process too, as it does in Stalk.

    .venv/bin/python bench/embedded_broker.py [--tasks 1000] [--rounds 3] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from _common import ROOT, machine, ratio, summary
from stack_throughput import APP, run_batch

from stalk.embedded import Stack, load_config
from stalk.embedded.broker import fake_server

MODES = ("embedded", "redis")
STOCK_SHARE = 10  # fakeredis's own TcpFakeServer is ~50x slower: it runs tasks/10 tasks per round


@contextlib.contextmanager
def stock_fakeredis_server() -> Iterator[None]:
    """The embedded mode on fakeredis's own TcpFakeServer (what Stalk used before), for reference."""
    from fakeredis import TcpFakeServer

    def stock(address: tuple[str, int], _password: str | None) -> TcpFakeServer:
        server = TcpFakeServer(address, server_type="redis", server_version=(7, 0))
        server.daemon_threads = True
        return server

    saved = fake_server.LoopbackFakeServer
    fake_server.LoopbackFakeServer = stock
    try:
        yield
    finally:
        fake_server.LoopbackFakeServer = saved


class EventDrain:
    """Consumes every event the stack emits on a thread, so both modes carry the event traffic."""

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self._receiver = None
        self._thread = threading.Thread(target=self._run, name="bench-events", daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> EventDrain:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)

    def _on_event(self, _event: dict) -> None:
        self.count += 1

    def _run(self) -> None:
        with self.app.connection() as conn:
            receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            receiver.on_consume_ready = lambda *_a, **_k: self._ready.set()
            self._receiver = receiver
            for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.5):
                pass


def measure(mode: str, tmp: str, run: int, tasks: int, pool: str, concurrency: int) -> tuple[float, str]:
    if mode == "stock":
        with stock_fakeredis_server():
            return measure("embedded", tmp, -run - 1, max(1, tasks // STOCK_SHARE), pool, concurrency)
    config = load_config({
        "app": APP, "data_dir": str(Path(tmp) / f"{mode}{run}"), "beat": False, "broker": {"mode": mode},
        "workers": [{"name": "bench", "queues": ["bench"], "concurrency": concurrency, "pool": pool}],
        "supervisor": {"reload": False},
    }, environ={"STALK_CONFIG": ""})
    stack = Stack(config).start(timeout=60)
    try:
        if stack.events is not None:  # the stack's own receiver and task store consume the events
            run_batch(stack.app, min(200, tasks))  # warm-up
            return run_batch(stack.app, tasks), "events: the stack's store"
        with EventDrain(stack.app) as drain:
            run_batch(stack.app, min(200, tasks))
            return run_batch(stack.app, tasks), f"events: {drain.count} drained"
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--stock", action="store_true",
                        help=f"also time fakeredis's own TcpFakeServer (tasks/{STOCK_SHARE} per round)")
    args = parser.parse_args()
    os.chdir(ROOT)
    modes = MODES + ("stock",) if args.stock else MODES
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.rounds):
            for mode in modes:
                rate, events = measure(mode, tmp, run, args.tasks, args.pool, args.concurrency)
                rates[mode].append(rate)
                print(f"  round {run + 1} {mode:8} {rate:8.1f} tasks/s ({events})", flush=True)
    print(f"embedded broker throughput, {args.tasks} no-op tasks x {args.rounds} rounds, pool {args.pool} "
          f"-c {args.concurrency}, events on, {machine()}")
    for mode in modes:
        print(f"  {mode:8} tasks/s {summary(rates[mode])}")
    print(f"  ratio embedded/redis: {ratio(rates['embedded'], rates['redis']):.2f}x (target >= 0.3x)")
    if args.stock:
        print(f"  ratio stock/redis:    {ratio(rates['stock'], rates['redis']):.2f}x (fakeredis's TcpFakeServer)")


if __name__ == "__main__":
    main()
