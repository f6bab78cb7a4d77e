"""Start the broker the config asks for and describe it."""

from __future__ import annotations

from stalk.embedded.broker import fake_server, redis_server
from stalk.embedded.broker.base import BrokerError, BrokerInfo
from stalk.embedded.broker.external import check_external
from stalk.embedded.config import StackConfig, find_redis_server
from stalk.embedded.net import LOOPBACK, free_port, port_in_use
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


def _url(port: int, password: str, db: int) -> str:
    return f"redis://:{password}@{LOOPBACK}:{port}/{db}"


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
    port = _pick_port(config)
    conf = redis_server.write_redis_conf(paths.state / "redis.conf", port=port, password=password,
                                         data_dir=paths.redis, appendfsync=config.broker.appendfsync)
    url = _url(port, password, 0)
    supervisor.add(ChildSpec(
        name="broker", role="broker", argv=redis_server.redis_argv(binary, conf), ready_state=ProcState.RUNNING,
        ready_check=lambda _c: redis_server.ping(url), watchdog=False,
    ))
    if not supervisor.wait_for(["broker"], BROKER_START_TIMEOUT):
        lines = supervisor.child("broker").logs.since(0)
        tail = lines[-1].text if lines else "no output"
        raise BrokerError(f"redis-server did not start on {LOOPBACK}:{port}: {tail}")
    durability = redis_server.DURABILITY[config.broker.appendfsync]
    pid = supervisor.child("broker").pid
    return BrokerInfo("redis", url, _url(port, password, 1), durability, port=port, pid=pid)


def _embedded(config: StackConfig) -> tuple[BrokerInfo, fake_server.EmbeddedRedisServer]:
    password = load_or_create_password(config.paths.password_file)
    server = fake_server.EmbeddedRedisServer(_pick_port(config), password)
    server.start()
    port = server.port
    info = BrokerInfo("embedded", _url(port, password, 0), _url(port, password, 1), fake_server.DURABILITY, port=port)
    return info, server


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
