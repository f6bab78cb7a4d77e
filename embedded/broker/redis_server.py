"""Stalk's own redis-server: loopback, password, AOF, noeviction, in the data dir."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from stalk.embedded.broker.base import BrokerError
from stalk.embedded.net import LOOPBACK
from stalk.embedded.secrets import write_private

DURABILITY = {
    "always": "redis, AOF always: every acknowledged submission is on disk",
    "everysec": "redis, AOF everysec: at most 1 s of submissions at risk",
    "no": "redis, AOF (OS flush): up to ~30 s of submissions at risk",
}


def write_redis_conf(path: Path, *, port: int, password: str, data_dir: Path, appendfsync: str) -> Path:
    """The config file (mode 0600: it holds the password) that the redis-server child reads."""
    lines = [
        f"port {port}",
        f"bind {LOOPBACK}",
        "protected-mode yes",
        f"requirepass {password}",
        f'dir "{data_dir}"',
        "appendonly yes",
        f"appendfsync {appendfsync}",
        "maxmemory-policy noeviction",
        'save ""',
        "daemonize no",
        'logfile ""',
        "loglevel notice",
    ]
    write_private(path, "\n".join(lines) + "\n")
    return path


def redis_argv(binary: str, conf: Path) -> list[str]:
    return [binary, str(conf)]


def ping(url: str, timeout: float = 0.5) -> bool:
    """True when a redis at `url` answers PING with our credentials."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.AuthenticationError as exc:
        raise BrokerError(f"redis at {url.rsplit('@', 1)[-1]} refused Stalk's password: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(url):
            return True
        time.sleep(0.05)
    return False
