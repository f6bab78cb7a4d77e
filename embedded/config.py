"""StackConfig: flags > environment > TOML file > defaults, validated into one clear error line."""

from __future__ import annotations

import ipaddress
import math
import os
import shutil
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from stalk.embedded.paths import StackPaths, default_config_file, default_data_dir

BROKER_MODES = ("auto", "redis", "embedded", "eager", "external")
POOLS = ("prefork", "threads", "solo")
APPENDFSYNC = ("always", "everysec", "no")
LISTEN = ("unix", "tcp")  # Stalk's own broker: a Unix socket in the data dir, or loopback TCP


class ConfigError(ValueError):
    """A bad setting: the message names the source, the key and what is allowed."""


@dataclass(frozen=True)
class WorkerSpec:
    """One supervised `stalk worker` consuming a group of queues."""

    name: str
    queues: tuple[str, ...]
    concurrency: int = 1
    pool: str = "prefork"
    autoscale: str | None = None  # "max,min" as Celery takes it
    max_tasks_per_child: int | None = None


@dataclass(frozen=True)
class BrokerConfig:
    mode: str = "auto"
    url: str | None = None  # external mode
    result_backend: str | None = None
    port: int = 0  # TCP only (set: listen on TCP): 0, a free loopback port
    listen: str = "unix"  # see LISTEN
    redis_server: str | None = None  # path to the binary; None: look on PATH
    appendfsync: str = "everysec"
    visibility_timeout: int = 3600


@dataclass(frozen=True)
class SupervisorConfig:
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    grace_period: float = 10.0
    ready_timeout: float = 30.0
    log_ring_lines: int = 5000
    reload: bool = True
    # Liveness after ready (as process-compose's liveness probes): every `liveness_interval` s each ready
    # worker is pinged; one that does not answer is shown unresponsive, and after `unresponsive_restart`
    # s of silence (while the broker is up) killed and restarted as after a crash (prefork pools only: a
    # solo or threads pool answers from the loop that runs its tasks). 0 turns either off.
    liveness_interval: float = 5.0
    unresponsive_restart: float = 30.0


@dataclass(frozen=True)
class EventsConfig:
    # Ask every worker for task events (Celery's enable_events remote command, as Flower does): a
    # plain `celery worker` without -E sends none, and its tasks would stay PENDING.
    enable_remote: bool = True


@dataclass(frozen=True)
class ApiConfig:
    """The stack's local API (embedded/service): always on a 0600 Unix socket in the data dir; on TCP too
    when `port` is set (0: a free port). Every request needs the token in <data_dir>/state/api.token."""

    enabled: bool = True
    port: int | None = None
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class FlowerConfig:
    """The Flower-compatible HTTP API (embedded/service/flower): Flower 2.x's /api/... paths on its port.
    Without `basic_auth` or `tokens` it answers anyone who can reach it, as Flower does: allowed on
    loopback only. `port` 0: a free port."""

    enabled: bool = True
    port: int = 5555
    host: str = "127.0.0.1"
    basic_auth: tuple[str, ...] = ()  # "user:password", as Flower's --basic_auth
    tokens: tuple[str, ...] = ()  # accepted as "Authorization: Bearer TOKEN"

    @property
    def auth(self) -> bool:
        return bool(self.basic_auth or self.tokens)


@dataclass(frozen=True)
class WebhookConfig:
    """One `[[webhooks]]` table (validated by embedded/webhooks/settings.py): tasks whose name matches a
    glob of `tasks` reaching one of `states` are POSTed to `url` as JSON, signed with `secret` when set."""

    url: str
    tasks: tuple[str, ...] = ("*",)
    states: tuple[str, ...] = ("SUCCESS", "FAILURE")
    secret: str | None = field(default=None, repr=False)  # never in a log line
    timeout: float = 10.0
    backoff_max: float = 300.0  # s: the longest wait between two tries while the receiver is down


@dataclass(frozen=True)
class AlertConfig:
    """One `[[alerts]]` table (validated by embedded/alerts/settings.py): a rule over the stack's state
    (`kind`), evaluated every few seconds; its firing and resolution are POSTed to `urls` through the
    webhooks' outbox, as JSON or as a Slack message (`format`)."""

    name: str
    kind: str  # task_failures | queue_depth | worker_offline | quota
    subject: str | None  # the task, queue or worker glob; the quota's name (None: the stack's only quota)
    threshold: float  # failures (count), messages (depth), percent used; worker_offline: its minutes
    minutes: float = 0.0  # the window (task_failures) or how long the condition must hold
    urls: tuple[str, ...] = ()
    format: str = "json"  # json | slack
    secret: str | None = field(default=None, repr=False)  # never in a log line
    timeout: float = 10.0
    backoff_max: float = 300.0


@dataclass(frozen=True)
class StackConfig:
    app: str | None = None  # "package.module:app"; None: the built-in demo app
    # --data-dir, STALK_DATA_DIR or data_dir in stalk.toml; None: the app's own default (`paths`)
    data_dir: Path | None = None
    # The directory the app is imported from (a running stack's, for the commands that find it);
    # None: the current directory, as `celery -A`.
    app_dir: Path | None = None
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    workers: tuple[WorkerSpec, ...] | None = None  # None: one per queue the app routes to
    beat: bool | None = None  # None: on for Stalk's own broker, off when attached (one beat per cluster)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    flower: FlowerConfig = field(default_factory=FlowerConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    alerts: tuple[AlertConfig, ...] = ()
    source: str = "defaults"

    @cached_property
    def paths(self) -> StackPaths:
        """The explicit data dir, else the app's default (embedded/paths.py: one per app, and per broker
        when attached to one), decided once."""
        if self.data_dir is not None:
            return StackPaths(self.data_dir)
        external = self.broker.mode == "external" or (self.broker.mode == "auto" and bool(self.broker.url))
        return StackPaths(default_data_dir(self.app, self.import_dir, self.broker.url if external else None))

    @property
    def import_dir(self) -> Path:
        """Where the app is imported from."""
        return self.app_dir if self.app_dir is not None else Path.cwd()

    def beat_enabled(self) -> bool:
        if self.beat is not None:
            return self.beat
        return self.resolved_mode() in ("redis", "embedded")

    def resolved_mode(self) -> str:
        """`auto` becomes redis when a redis-server binary exists, embedded otherwise."""
        if self.broker.mode != "auto":
            return self.broker.mode
        if self.broker.url:
            return "external"
        return "redis" if find_redis_server(self.broker.redis_server) else "embedded"


def find_redis_server(configured: str | None = None) -> str | None:
    if configured:
        return configured if Path(configured).is_file() else shutil.which(configured)
    return bundled_redis_server() or shutil.which("redis-server")


def bundled_redis_server() -> str | None:
    """A frozen binary's own redis-server (packaging/ bundles one): in sys._MEIPASS or beside the binary."""
    if not getattr(sys, "frozen", False):
        return None
    for folder in (getattr(sys, "_MEIPASS", None), os.path.dirname(sys.executable)):
        candidate = Path(folder or "") / "redis-server"
        if folder and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


# -- parsing -----------------------------------------------------------------------------------

_ENV_KEYS = {
    "STALK_APP": ("app",),
    "STALK_DATA_DIR": ("data_dir",),
    "STALK_BROKER": ("broker", "mode"),
    "STALK_BROKER_URL": ("broker", "url"),
    "STALK_RESULT_BACKEND": ("broker", "result_backend"),
    "STALK_BROKER_PORT": ("broker", "port"),
    "STALK_BROKER_LISTEN": ("broker", "listen"),
    "STALK_REDIS_SERVER": ("broker", "redis_server"),
    "STALK_APPENDFSYNC": ("broker", "appendfsync"),
    "STALK_BEAT": ("beat",),
    "STALK_ENABLE_EVENTS": ("events", "enable_remote"),
    "STALK_FLOWER_BASIC_AUTH": ("flower", "basic_auth"),  # user:pass[,user2:pass2]
    "STALK_FLOWER_PORT": ("flower", "port"),
    "CELERY_BROKER_URL": ("broker", "url"),
    "CELERY_RESULT_BACKEND": ("broker", "result_backend"),
}


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {value!r}: {allowed}")


def _as_bool(source: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _fail(source, key, value, "expected true or false")


def _as_int(source: str, key: str, value: Any, low: int = 0, high: int | None = None) -> int:
    try:
        number = int(value)
        if isinstance(value, bool | float):
            raise ValueError
    except (TypeError, ValueError):
        raise _fail(source, key, value, "expected a whole number") from None
    if number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise _fail(source, key, value, f"expected a whole number {bound}")
    return number


def _as_float(source: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(source, key, value, "expected a number") from None
    if not math.isfinite(number):  # nan made a restart back-off wait forever, "not ready within nan s"
        raise _fail(source, key, value, "expected a finite number of at least 0")
    if number < 0 or isinstance(value, bool):
        raise _fail(source, key, value, "expected a number of at least 0")
    return number


def _choice(source: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(source, key, value, "expected one of " + ", ".join(allowed))
    return value


def _as_str(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, value, "expected a non-empty string")
    return value


def _parse_broker(source: str, raw: Mapping[str, Any], base: BrokerConfig) -> BrokerConfig:
    known = {"mode", "url", "result_backend", "port", "listen", "redis_server", "appendfsync", "visibility_timeout"}
    _reject_unknown(source, "broker", raw, known)
    changes: dict[str, Any] = {}
    if "mode" in raw:
        changes["mode"] = _choice(source, "broker.mode", raw["mode"], BROKER_MODES)
    for key in ("url", "result_backend", "redis_server"):
        if key in raw:
            changes[key] = _as_str(source, f"broker.{key}", raw[key])
    if "url" in changes:
        _check_url(source, "broker.url", changes["url"])
    if "port" in raw:
        changes["port"] = _as_int(source, "broker.port", raw["port"], 0, 65535)
    if "listen" in raw:
        changes["listen"] = _choice(source, "broker.listen", raw["listen"], LISTEN)
    if "appendfsync" in raw:
        changes["appendfsync"] = _choice(source, "broker.appendfsync", raw["appendfsync"], APPENDFSYNC)
    if "visibility_timeout" in raw:
        changes["visibility_timeout"] = _as_int(source, "broker.visibility_timeout", raw["visibility_timeout"], 1)
    return replace(base, **changes)


def _check_url(source: str, key: str, url: str) -> None:
    schemes = ("redis://", "rediss://", "redis+socket://", "amqp://", "amqps://", "pyamqp://")
    if not url.startswith(schemes):
        raise _fail(source, key, url, "expected a redis://, rediss://, redis+socket:// or amqp:// URL")


def _parse_worker(source: str, index: int, raw: Any) -> WorkerSpec:
    where = f"workers[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(source, where, raw, "expected a table with name and queues")
    known = {"name", "queues", "concurrency", "pool", "autoscale", "max_tasks_per_child"}
    _reject_unknown(source, where, raw, known)
    name = _as_str(source, f"{where}.name", raw.get("name"))
    if not name.replace("-", "").replace("_", "").isalnum():
        raise _fail(source, f"{where}.name", name, "expected letters, digits, - and _ only")
    queues = raw.get("queues", [name])
    if isinstance(queues, str):
        queues = [q.strip() for q in queues.split(",") if q.strip()]
    if not isinstance(queues, list) or not queues or not all(isinstance(q, str) and q for q in queues):
        raise _fail(source, f"{where}.queues", queues, "expected a non-empty list of queue names")
    autoscale = raw.get("autoscale")
    if autoscale is not None:
        parts = str(autoscale).split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise _fail(source, f"{where}.autoscale", autoscale, 'expected "max,min", e.g. "8,2"')
        autoscale = ",".join(p.strip() for p in parts)
    mtpc = raw.get("max_tasks_per_child")
    return WorkerSpec(
        name=name,
        queues=tuple(queues),
        concurrency=_as_int(source, f"{where}.concurrency", raw.get("concurrency", 1), 1, 512),
        pool=_choice(source, f"{where}.pool", raw.get("pool", "prefork"), POOLS),
        autoscale=autoscale,
        max_tasks_per_child=None if mtpc is None else _as_int(source, f"{where}.max_tasks_per_child", mtpc, 1),
    )


def _parse_supervisor(source: str, raw: Mapping[str, Any], base: SupervisorConfig) -> SupervisorConfig:
    known = {"backoff_initial", "backoff_max", "grace_period", "ready_timeout", "log_ring_lines", "reload",
             "liveness_interval", "unresponsive_restart"}
    _reject_unknown(source, "supervisor", raw, known)
    changes: dict[str, Any] = {}
    for key in ("backoff_initial", "backoff_max", "grace_period", "ready_timeout", "liveness_interval",
                "unresponsive_restart"):
        if key in raw:
            changes[key] = _as_float(source, f"supervisor.{key}", raw[key])
    if "log_ring_lines" in raw:
        changes["log_ring_lines"] = _as_int(source, "supervisor.log_ring_lines", raw["log_ring_lines"], 10)
    if "reload" in raw:
        changes["reload"] = _as_bool(source, "supervisor.reload", raw["reload"])
    return replace(base, **changes)


def _reject_unknown(source: str, where: str, raw: Mapping[str, Any], known: set[str]) -> None:
    for key in raw:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"{source}: unknown key {prefix}{key}: expected one of {', '.join(sorted(known))}")


def apply_mapping(config: StackConfig, raw: Mapping[str, Any], source: str) -> StackConfig:
    """Overlay a nested mapping (TOML shape) on `config`, validating each key."""
    _reject_unknown(source, "", raw, {"app", "data_dir", "broker", "workers", "beat", "supervisor", "events",
                                      "api", "flower", "webhooks", "alerts"})
    changes: dict[str, Any] = {}
    if "app" in raw:
        changes["app"] = _check_app_spec(source, _as_str(source, "app", raw["app"]))
    if "data_dir" in raw:
        changes["data_dir"] = _expanded(source, _as_str(source, "data_dir", raw["data_dir"]))
    if "beat" in raw:
        changes["beat"] = _as_bool(source, "beat", raw["beat"])
    if "broker" in raw:
        section = raw["broker"]
        if not isinstance(section, Mapping):
            raise _fail(source, "broker", section, "expected a table")
        changes["broker"] = _parse_broker(source, section, config.broker)
    if "supervisor" in raw:
        section = raw["supervisor"]
        if not isinstance(section, Mapping):
            raise _fail(source, "supervisor", section, "expected a table")
        changes["supervisor"] = _parse_supervisor(source, section, config.supervisor)
    if "events" in raw:
        section = raw["events"]
        if not isinstance(section, Mapping):
            raise _fail(source, "events", section, "expected a table")
        _reject_unknown(source, "events", section, {"enable_remote"})
        if "enable_remote" in section:
            enable = _as_bool(source, "events.enable_remote", section["enable_remote"])
            changes["events"] = replace(config.events, enable_remote=enable)
    if "workers" in raw:
        changes["workers"] = _parse_workers(source, raw["workers"])
    if "api" in raw:
        changes["api"] = _parse_api(source, raw["api"], config.api)
    if "flower" in raw:
        changes["flower"] = _parse_flower(source, raw["flower"], config.flower)
    if "webhooks" in raw:
        from stalk.embedded.webhooks.settings import parse_webhooks  # it imports this module

        changes["webhooks"] = parse_webhooks(source, raw["webhooks"])
    if "alerts" in raw:
        from stalk.embedded.alerts.settings import parse_alerts  # it imports this module

        changes["alerts"] = parse_alerts(source, raw["alerts"])
    return replace(config, **changes)


def _parse_api(source: str, raw: Any, base: ApiConfig) -> ApiConfig:
    if not isinstance(raw, Mapping):
        raise _fail(source, "api", raw, "expected a table")
    _reject_unknown(source, "api", raw, {"enabled", "port", "host"})
    changes: dict[str, Any] = {}
    if "enabled" in raw:
        changes["enabled"] = _as_bool(source, "api.enabled", raw["enabled"])
    if "port" in raw:
        changes["port"] = _as_int(source, "api.port", raw["port"], 0, 65535)
    if "host" in raw:
        host = _as_str(source, "api.host", raw["host"])
        if not is_loopback(host):
            raise _fail(source, "api.host", host, NOT_LOOPBACK)
        changes["host"] = host
    return replace(base, **changes)


def _parse_flower(source: str, raw: Any, base: FlowerConfig) -> FlowerConfig:
    if not isinstance(raw, Mapping):
        raise _fail(source, "flower", raw, "expected a table")
    _reject_unknown(source, "flower", raw, {"enabled", "port", "host", "basic_auth", "tokens"})
    changes: dict[str, Any] = {}
    if "enabled" in raw:
        changes["enabled"] = _as_bool(source, "flower.enabled", raw["enabled"])
    if "port" in raw:
        changes["port"] = _as_int(source, "flower.port", raw["port"], 0, 65535)
    if "host" in raw:
        changes["host"] = _as_str(source, "flower.host", raw["host"])
    if "basic_auth" in raw:
        changes["basic_auth"] = _credentials(source, "flower.basic_auth", raw["basic_auth"], basic=True)
    if "tokens" in raw:
        changes["tokens"] = _credentials(source, "flower.tokens", raw["tokens"], basic=False)
    return replace(base, **changes)  # a non-loopback host without auth is refused at start (FLOWER_OPEN)


FLOWER_OPEN = ("the Flower-compatible API answers without credentials unless flower.basic_auth or flower.tokens "
               "is set: it listens on a non-loopback address only with one of them")


def _credentials(source: str, key: str, value: Any, basic: bool) -> tuple[str, ...]:
    """A list of strings (a string: comma-separated, as STALK_FLOWER_BASIC_AUTH gives them)."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise _fail(source, key, "…", "expected a list of non-empty strings")
    if basic and not all(":" in v and v.split(":", 1)[0] for v in items):
        raise _fail(source, key, "…", 'expected "user:password" strings')
    return tuple(items)


NOT_LOOPBACK = ("the API listens on loopback only (127.0.0.1, ::1 or localhost); to reach it from another "
                "machine, tunnel it: ssh -L 8765:127.0.0.1:PORT this-host")


def is_loopback(host: str) -> bool:
    """A loopback address or `localhost` (never a name another machine's DNS could answer for)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_workers(source: str, raw: Any) -> tuple[WorkerSpec, ...]:
    if not isinstance(raw, list):
        raise _fail(source, "workers", raw, "expected a list of [[workers]] tables")
    specs = tuple(_parse_worker(source, i, w) for i, w in enumerate(raw))
    names = [w.name for w in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise _fail(source, "workers.name", duplicate, "worker names must be unique")
    return specs


def _check_app_spec(source: str, spec: str) -> str:
    module = spec.split(":", 1)[0]
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise _fail(source, "app", spec, 'expected "package.module" or "package.module:app"')
    return spec


def _expanded(source: str, text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of no user (or no home)
        raise _fail(source, "data_dir", text, f"no home directory for {text.split('/', 1)[0]}") from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def env_mapping(environ: Mapping[str, str]) -> dict[str, Any]:
    """STALK_* and CELERY_* variables as a TOML-shaped mapping."""
    out: dict[str, Any] = {}
    for name, path in _ENV_KEYS.items():
        if name in environ and environ[name] != "":
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = environ[name]
    return out


def load_config(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> StackConfig:
    """Build the StackConfig: defaults < TOML file < environment < flags."""
    environ = os.environ if environ is None else environ
    config = StackConfig()
    path = config_file or (Path(environ["STALK_CONFIG"]) if environ.get("STALK_CONFIG") else None)
    explicit = path is not None
    path = path or default_config_file()
    if explicit and not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.exists():
        config = apply_mapping(config, read_toml(path), str(path))
        config = replace(config, source=str(path))
    config = apply_mapping(config, env_mapping(environ), "environment")
    if flags:
        config = apply_mapping(config, flags, "command line")
    return config
