"""A client without the password, for fault tests: holds `--idle` connections to a redis server open without
a word and keeps `--garbage` more sending junk; a connection the server drops is opened again, at most
`--reopen-rate` a second in all. Prints `ready` once every connection has been opened once, and its
counts as JSON when it stops: after `--seconds`, or as soon as its stdin closes (the test ended or died).

    python tests/apps/broker_flood.py (--tcp HOST:PORT | --unix PATH) [--idle 1000] [--garbage 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import socket
import sys
import time
from collections import deque

JUNK = (
    b"\n" * 4096,  # blank lines: each one a command to parse
    b"PING\r\n" * 600,  # inline commands, pipelined
    b"*1\r\n$400000000\r\n" + b"x" * 4096,  # a huge bulk announced
    b"GET " + b"y" * 8192,  # an inline request that never ends
    b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n" * 100,  # guessing the password
    bytes(range(256)) * 16,  # binary
)
RESEND_EVERY = 0.05  # seconds between two junk chunks on one connection


class Flood:
    def __init__(self, address: str | tuple[str, int], rate: float) -> None:
        self.family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.address = address
        self.rate = rate
        self.sel = selectors.DefaultSelector()
        self.to_open: deque[str] = deque()
        self.resend: deque[tuple[float, socket.socket]] = deque()
        self.tokens = 0.0
        self.counts = {"opened": 0, "dropped": 0, "refused": 0, "sent": 0, "failed": 0}

    def open_some(self, now: float, burst: bool) -> None:
        while self.to_open and (burst or self.tokens >= 1):
            kind = self.to_open.popleft()
            self.tokens -= 0 if burst else 1
            sock = socket.socket(self.family, socket.SOCK_STREAM)
            sock.setblocking(False)
            if sock.connect_ex(self.address) not in (0, 115):  # 115: EINPROGRESS
                sock.close()
                self.counts["failed"] += 1
                self.to_open.append(kind)
                return
            self.counts["opened"] += 1
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if kind == "garbage" else 0)
            self.sel.register(sock, events, kind)

    def on_event(self, sock: socket.socket, kind: str, mask: int, now: float) -> None:
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(1 << 16)
                if not data:
                    return self.drop(sock, kind)
                self.counts["refused"] += data.startswith(b"-ERR max number of clients")
            if mask & selectors.EVENT_WRITE:
                self.counts["sent"] += sock.send(JUNK[self.counts["sent"] % len(JUNK)])
                self.sel.modify(sock, selectors.EVENT_READ, kind)
                self.resend.append((now + RESEND_EVERY, sock))
        except OSError:
            self.drop(sock, kind)

    def drop(self, sock: socket.socket, kind: str) -> None:
        self.sel.unregister(sock)
        sock.close()
        self.counts["dropped"] += 1
        self.to_open.append(kind)

    def rearm(self, now: float) -> None:
        while self.resend and self.resend[0][0] <= now:
            _, sock = self.resend.popleft()
            if sock.fileno() >= 0:
                self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "garbage")


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft limit on descriptors toward `wanted`; how many this process may open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def main() -> None:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp")
    where.add_argument("--unix")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--garbage", type=int, default=100)
    parser.add_argument("--reopen-rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    limit = raise_fd_limit(args.idle + args.garbage + 64)
    idle = min(args.idle, limit - args.garbage - 64)
    address: str | tuple[str, int] = args.unix or (args.tcp.rsplit(":", 1)[0], int(args.tcp.rsplit(":", 1)[1]))
    flood = Flood(address, args.reopen_rate)
    flood.to_open.extend(["idle"] * idle + ["garbage"] * args.garbage)
    flood.sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    flood.open_some(time.monotonic(), burst=True)
    print(f"ready {idle} idle, {args.garbage} garbage", flush=True)
    last = time.monotonic()
    deadline = last + args.seconds
    while (now := time.monotonic()) < deadline:
        flood.tokens = min(flood.rate, flood.tokens + (now - last) * flood.rate)
        last = now
        flood.open_some(now, burst=False)
        flood.rearm(now)
        for key, mask in flood.sel.select(timeout=0.02):
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 100):
                    deadline = 0
                continue
            flood.on_event(key.fileobj, key.data, mask, now)  # type: ignore[arg-type]
    print(json.dumps({**flood.counts, "idle": idle, "garbage": args.garbage}), flush=True)


if __name__ == "__main__":
    main()
