"""Start the broker the config asks for and describe it."""

from __future__ import annotations

from pathlib import Path

from stalk.embedded.broker import fake_server, redis_server
from stalk.embedded.broker.address import (
    PIDFILE,
    release_fallback,
    socket_path,
    socket_url,
    tcp_url,
)
from stalk.embedded.broker.base import BrokerError, BrokerInfo
from stalk.embedded.broker.external import check_external
from stalk.embedded.config import StackConfig, find_redis_server
from stalk.embedded.net import LOOPBACK, free_port, port_in_use
from stalk.embedded.patches import guard_port, unguard_port
from stalk.embedded.secrets import load_or_create_password
from stalk.embedded.supervisor import ChildSpec, ProcState, Supervisor

BROKER_START_TIMEOUT = 15.0


def start_broker(config: StackConfig, supervisor: Supervisor) -> tuple[BrokerInfo, object | None]:
    """Returns the broker's description and a handle with `stop()` (or None when there is none)."""
    mode = config.resolved_mode()
    if mode == "eager":
        return BrokerInfo("eager", None, None, "eager: tasks run inside Stalk; nothing is queued"), None
    if mode == "external":
        return _external(config), None
    if mode == "embedded":
        return _embedded(config)
    return _redis(config, supervisor), None


def _url(listen: Path | int, password: str, db: int, user: str = "") -> str:
    """The broker's URL: `listen` is the Unix socket's path, or the loopback TCP port."""
    if isinstance(listen, Path):
        return socket_url(listen, password, db, user)
    return tcp_url(LOOPBACK, listen, password, db, user)


def _listen(config: StackConfig) -> Path | int:
    """Where Stalk's own broker listens: a Unix socket in the data dir unless the user asked for TCP
    (`broker.listen = "tcp"`, or a port set explicitly); for TCP, the port."""
    if config.broker.listen == "tcp" or config.broker.port:
        return _pick_port(config)
    return socket_path(config.paths.state)


def _pick_port(config: StackConfig) -> int:
    port = config.broker.port or free_port()
    if config.broker.port and port_in_use(port):
        raise BrokerError(f"broker port {port} on {LOOPBACK} is already in use: free it, "
                          "or set broker.port = 0 (any free port)")
    return port


def _redis(config: StackConfig, supervisor: Supervisor) -> BrokerInfo:
    binary = find_redis_server(config.broker.redis_server)
    if binary is None:
        wanted = config.broker.redis_server or "redis-server"
        raise BrokerError(f"{wanted}: no such redis-server binary (install redis, or use --broker embedded)")
    paths = config.paths
    password = load_or_create_password(paths.password_file)
    listen = _listen(config)
    where = listen if isinstance(listen, Path) else f"{LOOPBACK}:{listen}"
    pidfile = paths.state / PIDFILE
    conf = redis_server.write_redis_conf(
        paths.state / "redis.conf", password=password, data_dir=paths.redis, appendfsync=config.broker.appendfsync,
        pidfile=pidfile, **({"socket": listen} if isinstance(listen, Path) else {"port": listen}))
    if not isinstance(listen, Path):
        guard_port(listen, pidfile)  # every client in this process checks the server is ours before AUTH
    user = redis_server.CLIENT_USER
    url = _url(listen, password, 0, user)
    supervisor.add(ChildSpec(
        name="broker", role="broker", argv=redis_server.redis_argv(binary, conf), ready_state=ProcState.RUNNING,
        ready_check=lambda _c: redis_server.ping(url), watchdog=False,
    ))
    if not supervisor.wait_for(["broker"], BROKER_START_TIMEOUT):
        lines = supervisor.child("broker").logs.since(0)
        tail = lines[-1].text if lines else "no output"
        if not isinstance(listen, Path):
            unguard_port(listen)
        raise BrokerError(f"redis-server did not start on {where}: {tail}")
    durability = redis_server.DURABILITY[config.broker.appendfsync]
    pid = supervisor.child("broker").pid
    port, sock = (None, str(listen)) if isinstance(listen, Path) else (listen, None)
    return BrokerInfo("redis", url, _url(listen, password, 1, user), durability, port=port, pid=pid, socket=sock)


def _embedded(config: StackConfig) -> tuple[BrokerInfo, fake_server.EmbeddedRedisServer]:
    password = load_or_create_password(config.paths.password_file)
    server = fake_server.EmbeddedRedisServer(_listen(config), password)
    server.start()
    listen = server.address
    port, sock = (None, str(listen)) if isinstance(listen, Path) else (listen, None)
    info = BrokerInfo("embedded", _url(listen, password, 0), _url(listen, password, 1), fake_server.DURABILITY,
                      port=port, socket=sock)
    return info, server


def stop_broker(config: StackConfig, info: BrokerInfo | None) -> None:
    """What start_broker left outside the data dir (a fallback socket dir) or in this process (a guard)."""
    release_fallback(config.paths.state)
    if info is not None and info.mode == "redis" and info.port:
        unguard_port(info.port)


def _external(config: StackConfig) -> BrokerInfo:
    url = config.broker.url
    if not url:
        raise BrokerError("external mode needs broker.url (or CELERY_BROKER_URL), e.g. redis://host:6379/0")
    backend = config.broker.result_backend
    if backend is None and url.startswith("redis"):
        backend = url
    check_external(url)
    durability = "the external broker's own (Stalk attached to it: it runs no broker, workers or beat)"
    return BrokerInfo("external", url, backend, durability)
