"""Load the user's Celery app (or the demo) and apply Stalk's safe, observable defaults."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from celery import Celery

from stalk.embedded.broker.address import SOCKET_SCHEME, redis_py_url
from stalk.embedded.config import ConfigError, StackConfig, WorkerSpec
from stalk.embedded.patches import REDIS_TRANSPORT, use_socket_connections
from stalk.embedded.paths import DEMO_APP  # defined beside the data dirs: the demo has its own


class AppLoadError(ConfigError):
    """The -A app could not be imported or is not a Celery app."""


def _import_from(directory: Path | None) -> None:
    """Put the directory the app is imported from (default: the current one) on sys.path, as `celery -A`
    does: first for an explicit one (a running stack's project folder, `StackConfig.app_dir`)."""
    if directory is not None:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def load_app(spec: str | None, directory: Path | None = None) -> Celery:
    """Import `package.module:attr` (or `package.module`, finding `app`/`celery`) like `celery -A`, from
    `directory` (default: the current directory)."""
    spec = spec or DEMO_APP
    module_name, _, attr = spec.partition(":")
    _import_from(directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"-A {spec}: cannot import {module_name}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise AppLoadError(f"-A {spec}: importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    candidates = [attr] if attr else ["app", "celery"]
    for name in candidates:
        obj = getattr(module, name, None)
        if isinstance(obj, Celery):
            return obj
    raise AppLoadError(f"-A {spec}: {module_name} has no Celery app named {' or '.join(candidates)}")


def missing_app(spec: str | None, directory: Path | None = None) -> str | None:
    """One line when the module of `spec` does not exist (looked up, not run: only its parent packages
    are imported), else None. A module that exists but fails to import is load_app's to report."""
    if not spec:
        return None
    module_name = spec.partition(":")[0]
    _import_from(directory)
    try:
        if importlib.util.find_spec(module_name) is not None:
            return None
    except ModuleNotFoundError as exc:  # a parent package is missing (or one of its own imports is)
        if not (exc.name and (module_name + ".").startswith(exc.name + ".")):
            return None
    except Exception:  # a parent package raised while importing: load_app says so
        return None
    where = directory or Path.cwd()
    return f"-A {spec}: no module named {module_name!r} (not in {where} nor on the Python path)"


def import_task_modules(app: Celery) -> str | None:
    """Import the app's task modules the way a worker does at start (`include`, `imports`, Django-style
    `autodiscover_tasks()`), so every task the workers run is known here with its signature. A module
    that fails to import is reported, not raised: the workers will say the same in their logs. Once per
    app: the stack, its control and a command's client all ask, and the autodiscovery signal re-runs
    on every call."""
    if hasattr(app, "stalk_task_modules"):
        return app.stalk_task_modules
    try:
        app.loader.import_default_modules()
        problem = None
    except Exception as exc:  # the user's module raised while importing
        problem = f"importing {app.main}'s task modules failed: {type(exc).__name__}: {exc}"
    app.stalk_task_modules = problem
    return problem


def client_app(app: Celery) -> Celery:
    """A fresh Celery app with `app`'s settings: its own connection pools, so two stacks in one
    process (tests, scripts) never share a connection to the wrong broker."""
    client = Celery(app.main, set_as_current=False, fixups=[])
    client.conf.update(app.conf.table(with_defaults=False))
    return client


def stalk_settings(broker_url: str | None, backend_url: str | None, visibility_timeout: int) -> dict:
    """The settings every Stalk process applies: JSON only, events on, late acks."""
    settings = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "broker_connection_retry_on_startup": True,
        # A result that cannot be stored while the broker restarts is retried, not dropped.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 20,
        # Results name their task, args and worker: history lost in a crash is rebuilt from them.
        "result_extended": True,
        "worker_hijack_root_logger": False,
        # kombu's defaults for sep and priority_steps on purpose: any plain worker or client on the same
        # broker must read the same binding table and priority sub-queues (name, name\x06\x163, ...).
        # Sweep for unacked messages of dead consumers every visibility/4 s (kombu's default is ~100 s).
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
    }
    if broker_url is not None:
        settings["broker_url"] = broker_url
    if backend_url is not None:
        settings["result_backend"] = backend_url
    return settings


def configure_app(app: Celery, broker_url: str | None, backend_url: str | None, *, eager: bool = False,
                  visibility_timeout: int = 3600) -> Celery:
    """Apply Stalk's settings to `app` in place; `eager` runs tasks in the calling process."""
    settings = stalk_settings(broker_url, backend_url, visibility_timeout)
    scheme = str(broker_url or "").partition("://")[0]
    if not scheme.startswith("redis"):
        settings.pop("broker_transport_options")
        settings.pop("result_backend_transport_options")
    if app.conf.broker_transport in (None, REDIS_TRANSPORT):  # never the user's own choice
        fast = scheme in ("redis", SOCKET_SCHEME) and not eager  # rediss (TLS): kombu's own, untouched
        settings["broker_transport"] = REDIS_TRANSPORT if fast else None
        if fast and scheme == SOCKET_SCHEME:
            use_socket_connections(app)  # else the URL's prefix, not broker_transport, picks kombu's transport
    if scheme == SOCKET_SCHEME and not app.conf.get("redbeat_redis_url"):
        settings["redbeat_redis_url"] = redis_py_url(str(broker_url))  # RedBeat reads it with redis-py
    if eager:
        settings.update(task_always_eager=True, task_eager_propagates=False, task_store_eager_result=True,
                        broker_url="memory://", result_backend="cache+memory://")
    app.conf.update(settings)
    return app


def routed_queues(app: Celery) -> list[str]:
    """Every queue the app declares or routes to, default queue included, in a stable order."""
    names: list[str] = []

    def add(items: Iterable[str | None]) -> None:  # a route without a queue gives None: skipped
        for name in items:
            if name and name not in names:
                names.append(name)

    if app.conf.task_queues:
        add(q.name for q in app.conf.task_queues)
    routes = app.conf.task_routes or {}
    if isinstance(routes, dict):
        add(r.get("queue") for r in routes.values() if isinstance(r, dict))
    elif isinstance(routes, (list, tuple)):
        for entry in routes:
            if isinstance(entry, dict):
                add(r.get("queue") for r in entry.values() if isinstance(r, dict))
    add([app.conf.task_default_queue or "celery"])
    return names


def default_workers(app: Celery) -> tuple[WorkerSpec, ...]:
    """The app's own layout (`stalk_workers` setting), else what a Celery user expects of one plain
    `celery worker`: one worker consuming every queue the app declares or routes to, at Celery's own
    concurrency (the app's worker_concurrency, else one process a CPU), named after the default queue
    (`celery@host` for an app that keeps Celery's default)."""
    declared = app.conf.get("stalk_workers")
    if declared:
        from stalk.embedded.config import _parse_workers

        return _parse_workers(f"{app.main} app setting stalk_workers", list(declared))
    queues = routed_queues(app)
    default = (app.conf.task_default_queue or "celery").replace(".", "-")
    concurrency = app.conf.worker_concurrency or os.cpu_count() or 1
    return (WorkerSpec(name=default, queues=tuple(queues), concurrency=concurrency),)


def worker_specs(config: StackConfig, app: Celery) -> tuple[WorkerSpec, ...]:
    if config.workers is not None:
        return config.workers
    if config.resolved_mode() in ("external", "eager"):
        return ()
    return default_workers(app)
