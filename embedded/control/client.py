"""A Control for a shell command: against the local running stack (found through its data dir's
status file, which carries the broker URL and password, mode 0600) or any broker URL."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from stalk.embedded.broker.address import PIDFILE
from stalk.embedded.broker.base import redact, redact_text
from stalk.embedded.celery_app import client_app, configure_app, import_task_modules, load_app
from stalk.embedded.config import ConfigError, StackConfig, WorkerSpec
from stalk.embedded.control.control import Control
from stalk.embedded.control.problems import ControlError
from stalk.embedded.control.revokes import RevokeStore, revoke_store_path
from stalk.embedded.patches import guard_port
from stalk.embedded.status_file import read_status

#: s a command waits on the broker (connect, a reply, a publish attempt) before it says "unreachable"
COMMAND_TIMEOUT = 3.0
#: A command gives up after one more attempt: the result backend's 20 (stalk_settings, ~20 s) and a
#: publish's 3 are for the workers and the stack, which must not drop a result or a task.
COMMAND_RETRIES = 1


def fail_fast(app: Celery) -> None:
    """A shell command's client settings: "broker unreachable" within seconds. Without a socket timeout
    a stopped (SIGSTOP) redis-server is waited for forever; without these retry limits a broker that goes
    away after the connect check costs the result backend's 20 retries before `submit` says so."""
    conf = app.conf
    conf.broker_connection_timeout = COMMAND_TIMEOUT
    conf.broker_connection_max_retries = COMMAND_RETRIES
    conf.task_publish_retry_policy = {"max_retries": COMMAND_RETRIES, "interval_start": 0, "interval_step": 0.2,
                                      "interval_max": 0.2}
    conf.result_backend_always_retry = False
    conf.result_backend_max_retries = COMMAND_RETRIES
    conf.redis_socket_timeout = conf.redis_socket_connect_timeout = COMMAND_TIMEOUT
    if str(conf.result_backend or "").startswith("redis"):  # the redis backend's own reconnects (20 by default)
        conf.result_backend_transport_options = {**(conf.result_backend_transport_options or {}), "retry_policy": {
            "max_retries": COMMAND_RETRIES, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}}
    if str(conf.broker_url or "").startswith("redis"):  # kombu's redis transport: no timeout by default
        conf.broker_transport_options = {**(conf.broker_transport_options or {}),
                                         "socket_timeout": COMMAND_TIMEOUT, "socket_connect_timeout": COMMAND_TIMEOUT}


@dataclass(frozen=True)
class LocalStack:
    """What a running Stalk published about itself."""

    broker_url: str | None
    backend_url: str | None
    mode: str | None
    worker_specs: tuple[WorkerSpec, ...]


def local_stack(config: StackConfig) -> LocalStack:
    """The stack running on `config`'s data dir; ControlError when none runs (or it is eager)."""
    status = read_status(config.paths.state)
    if status is None:
        raise ControlError(f"no Stalk is running on data dir {config.paths.data_dir}; start one (stalk up) or pass "
                           "--broker-url URL (or set CELERY_BROKER_URL)")
    broker = status.get("broker") or {}
    if broker.get("mode") == "eager":
        raise ControlError("the running stack is in eager mode: its tasks run inside its own process; "
                           "use its panel")
    if not broker.get("broker_url"):
        raise ControlError("the running stack published no broker URL")
    specs = tuple(WorkerSpec(name=p["name"], queues=tuple(p.get("queues") or ()))
                  for p in status.get("processes", []) if p.get("role") == "worker")
    if broker.get("mode") == "redis" and broker.get("port"):  # TCP: talk only to the stack's own redis-server
        guard_port(int(broker["port"]), config.paths.state / PIDFILE)
    return LocalStack(broker["broker_url"], broker.get("backend_url"), broker.get("mode"), specs)


def user_app_for(config: StackConfig, demo: bool) -> tuple[Celery | None, str | None]:
    """(the -A app, imported from config.app_dir (a running stack's) or the current directory, or, with
    `demo`, the demo app when none is configured; a warning if it failed)."""
    if not config.app and not demo:
        return None, None
    try:
        app = load_app(config.app, config.app_dir)
    except ConfigError as exc:
        return None, f"{exc}; task names are checked against the workers only"
    problem = import_task_modules(app)
    return app, f"{problem}; their arguments are not checked" if problem else None


def connect(config: StackConfig, broker_url: str, backend_url: str | None, user_app: Celery | None,
            worker_specs: tuple[WorkerSpec, ...] = ()) -> Control:
    """A Control on a client app with the user's routes and Stalk's settings; ControlError if the
    broker does not answer within a few seconds."""
    app = client_app(user_app) if user_app is not None else Celery("stalk-cli", set_as_current=False)
    configure_app(app, broker_url, backend_url, visibility_timeout=config.broker.visibility_timeout)
    fail_fast(app)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=COMMAND_TIMEOUT)
    except Exception as exc:
        raise ControlError(f"broker {redact(broker_url)} unreachable: {redact_text(str(exc), broker_url)}") from None
    control = Control(app, user_app=user_app, worker_specs=worker_specs,
                      revokes=RevokeStore(revoke_store_path(config.paths.data_dir)),
                      beat_schedule=config.paths.beat_schedule, beat_runs=config.paths.beat_runs)
    control.history = config.paths.history_db  # what the stack on this data dir has seen (revoke checks)
    return control
