"""Stalk's own redis-server: loopback, password, AOF, noeviction, in the data dir."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from stalk.embedded.broker.address import redis_py_url
from stalk.embedded.broker.base import BrokerError
from stalk.embedded.net import LOOPBACK
from stalk.embedded.secrets import write_private

DURABILITY = {
    "always": "redis, AOF always: every acknowledged submission is on disk",
    "everysec": "redis, AOF everysec: at most 1 s of submissions at risk",
    "no": "redis, AOF (OS flush): up to ~30 s of submissions at risk",
}


CLIENT_USER = "stalk"  # the ACL user every Stalk client (and `stalk env`'s URL) authenticates as
# What Stalk's clients may run: everything kombu, Celery's redis backend, RedBeat and Stalk send, never the
# server's administration (CONFIG, REPLICAOF, SHUTDOWN, ACL, MONITOR, DEBUG, MODULE, ...: @admin and
# @dangerous), except the @dangerous data commands an app's own code may use on its broker (INFO, KEYS, SORT,
# FLUSHDB). Checked 2026-12-07: redis's ACL log (read through a probe admin user added for the run) held no
# denial after the control, CLI, events, RedBeat, journal and broker-fault tests.
CLIENT_RULES = "~* &* +@all -@admin -@dangerous +info +keys +sort +sort_ro +flushdb"
# Gone for everyone, whatever a user's ACL says: the commands that reconfigure, replicate or stop redis.
DISABLED_COMMANDS = ("CONFIG", "REPLICAOF", "SLAVEOF", "SHUTDOWN", "ACL", "MONITOR", "DEBUG", "MODULE",
                     "FAILOVER", "SYNC", "PSYNC", "MIGRATE", "BGSAVE", "SAVE", "BGREWRITEAOF")


def write_redis_conf(path: Path, *, password: str, data_dir: Path, appendfsync: str,
                     socket: Path | None = None, port: int = 0, pidfile: Path | None = None) -> Path:
    """The config file (mode 0600: it holds the password) that the redis-server child reads: a Unix
    socket only the user can open (`socket`), or loopback TCP on `port` when the user asked for TCP."""
    listen = [f"unixsocket {socket}", "unixsocketperm 700", "port 0"] if socket else [f"port {port}"]
    lines = [
        *listen,
        f"bind {LOOPBACK}",
        "protected-mode yes",
        # Off, without a password: no connection can be `default`. Its rules are the clients' all the same:
        # redis-server 7.0 replays the AOF's MULTI/EXEC blocks checking them against `default`.
        f"user default off resetpass {CLIENT_RULES}",
        f"user {CLIENT_USER} on >{password} {CLIENT_RULES}",
        *(f'rename-command {name} ""' for name in DISABLED_COMMANDS),
        "enable-protected-configs no",
        "enable-debug-command no",
        "enable-module-command no",
        f'dir "{data_dir}"',
        *([f'pidfile "{pidfile}"'] if pidfile else []),
        "appendonly yes",
        f"appendfsync {appendfsync}",
        "maxmemory-policy noeviction",
        "notify-keyspace-events Kl",  # wakes Stalk's workers' reliable consume (patches/kombu_redis_reliable)
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
        client = redis.Redis.from_url(redis_py_url(url), socket_timeout=timeout, socket_connect_timeout=timeout)
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
