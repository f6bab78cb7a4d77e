"""Puts a dead Stalk worker's messages back in their queues at once, instead of after the visibility timeout.

Stalk's workers on Stalk's redis record what each process holds (patches/kombu_redis_reliable: the set
`stalk.held:<node>:<pid>`, listed in the `stalk.holders` hash with the process group). When a worker dies,
its running and prefetched messages are in that set and in kombu's unacked table. Once the process and its
whole group are gone (no pool child still runs one of them), each is restored as kombu's own visibility
sweep would (restore_by_tag: back at the head of its queue, marked redelivered). Messages of live workers
are never touched: only sets whose process is gone are read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from stalk.embedded.broker.address import redis_py_url
from stalk.embedded.patches.kombu_redis_reliable import HOLDERS, holder_of

PROC = Path("/proc")
UNACKED = "unacked"  # kombu's Channel.unacked_key (Stalk keeps kombu's default)
RETRY_EVERY = 0.2  # seconds between looks while a worker that just died may still have pool processes
RETRY_FOR = 15.0  # seconds of those looks after each poke
IDLE_EVERY = 5.0  # seconds between looks otherwise


@dataclass
class Requeued:
    node: str
    pid: int
    task_ids: list[str] = field(default_factory=list)


def gone(pid: int, pgid: int | None) -> bool:
    """The process and every process of its group have exited (this machine: Stalk's redis is local). A
    zombie counts as gone: where PID 1 does not reap orphans, a dead worker's pool processes stay zombies."""
    if PROC.is_dir():
        return not _alive(pid) and (pgid is None or not any(_alive(p, pgid) for p in _pids()))
    return not _signalable(os.kill, pid) and (pgid is None or not _signalable(os.killpg, pgid))


def _signalable(send: Callable[[int, int], None], target: int) -> bool:
    """Without /proc: signal 0 reaches `target` (a process, or a group with `os.killpg`)."""
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def _alive(pid: int, in_group: int | None = None) -> bool:
    """`pid` exists and is not a zombie (and is in process group `in_group`, if given): /proc/<pid>/stat."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()  # after the command name: state, ppid, pgrp, ...
    if len(fields) < 3 or fields[0] in ("Z", "X"):
        return False
    return in_group is None or fields[2] == str(in_group)


def dead_holders(client: redis.Redis, is_gone: Callable[[int, int | None], bool] = gone) -> list[str]:
    """The held-set keys whose worker process (and its group) is gone."""
    dead = []
    for raw_key, raw_group in client.hgetall(HOLDERS).items():
        key = _text(raw_key)
        holder = holder_of(key)
        group = _text(raw_group)
        if holder is None:
            client.hdel(HOLDERS, key)
        elif is_gone(holder[1], int(group) if group.isdigit() else None):
            dead.append(key)
    return dead


def requeue_held(app: Celery, client: redis.Redis, key: str) -> Requeued:
    """Restore every message the set `key` names that is still unacked; forget the set."""
    holder = holder_of(key)
    assert holder is not None
    done = Requeued(*holder)
    tags = [_text(t) for t in client.smembers(key)]
    if tags:
        with app.connection_for_write() as conn:
            qos = conn.default_channel.qos
            for tag in tags:
                raw = client.hget(UNACKED, tag)
                if raw is None:  # acked or restored since
                    continue
                qos.restore_by_tag(tag, client=client)
                if task_id := _task_id(raw):
                    done.task_ids.append(task_id)
    client.delete(key)
    client.hdel(HOLDERS, key)
    return done


def requeue_dead(app: Celery, client: redis.Redis, is_gone: Callable[[int, int | None], bool] = gone) -> list[Requeued]:
    """Requeue the messages of every dead holder."""
    return [requeue_held(app, client, key) for key in dead_holders(client, is_gone)]


def _task_id(raw: bytes | str) -> str | None:
    try:
        payload = json.loads(raw)[0]
        return str(payload["headers"]["id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Requeuer:
    """A thread that requeues dead holders' messages: at start (workers that died with a previous Stalk),
    then whenever `poke()` says a worker changed, retrying briefly while a dead worker's group exits."""

    def __init__(self, app: Celery, broker_url: str, on_requeued: Callable[[Requeued], None],
                 log: Callable[[str], object]) -> None:
        self.app = app
        self._client = redis.Redis.from_url(redis_py_url(broker_url), socket_timeout=5, socket_connect_timeout=2)
        self._on_requeued = on_requeued
        self._log = log
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stalk-requeue", daemon=True)

    def start(self) -> Requeuer:
        self._thread.start()
        return self

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def restart(self) -> None:
        """A new thread after this one died (the stack's thread watch)."""
        self._thread = threading.Thread(target=self._loop, name="stalk-requeue", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._client.close()

    def _loop(self) -> None:
        busy_until = time.monotonic() + RETRY_FOR
        while not self._stop.is_set():
            try:
                for done in requeue_dead(self.app, self._client):
                    self._on_requeued(done)
            except redis.RedisError:
                pass  # the broker is restarting: its supervisor pokes again when it is back
            except Exception as exc:  # never let one bad entry stop the thread
                self._log(f"[stalk] requeueing a dead worker's messages failed: {type(exc).__name__}: {exc}")
            wait = RETRY_EVERY if time.monotonic() < busy_until else IDLE_EVERY
            if self._wake.wait(wait):
                self._wake.clear()
                busy_until = time.monotonic() + RETRY_FOR
