"""Load the user's Celery app (or the demo) and apply Stalk's safe, observable defaults."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

from celery import Celery

from stalk.embedded.broker import redis_transport
from stalk.embedded.config import ConfigError, StackConfig, WorkerSpec

DEMO_APP = "stalk.embedded.demo.app:app"


class AppLoadError(ConfigError):
    """The -A app could not be imported or is not a Celery app."""


def load_app(spec: str | None) -> Celery:
    """Import `package.module:attr` (or `package.module`, finding `app`/`celery`) like `celery -A`."""
    spec = spec or DEMO_APP
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
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


def app_source_files(app: Celery, spec: str | None) -> list[Path]:
    """Files to watch for hot reload: the package holding the app module."""
    module_name = (spec or DEMO_APP).partition(":")[0]
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return []
    return [Path(file).parent]


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
    if app.conf.broker_transport in (None, redis_transport.NAME):  # never the user's own choice
        fast = scheme == "redis" and not eager  # rediss (TLS): kombu's own, untouched
        settings["broker_transport"] = redis_transport.NAME if fast else None
    if eager:
        settings.update(task_always_eager=True, task_eager_propagates=False, task_store_eager_result=True,
                        broker_url="memory://", result_backend="cache+memory://")
    app.conf.update(settings)
    return app


def routed_queues(app: Celery) -> list[str]:
    """Every queue the app declares or routes to, default queue included, in a stable order."""
    names: list[str] = []

    def add(items: Iterable[str]) -> None:
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
    """The app's own layout (`stalk_workers` setting) or one worker per routed queue."""
    declared = app.conf.get("stalk_workers")
    if declared:
        from stalk.embedded.config import _parse_workers

        return _parse_workers(f"{app.main} app setting stalk_workers", list(declared))
    return tuple(WorkerSpec(name=q.replace(".", "-"), queues=(q,)) for q in routed_queues(app))


def worker_specs(config: StackConfig, app: Celery) -> tuple[WorkerSpec, ...]:
    if config.workers is not None:
        return config.workers
    if config.resolved_mode() in ("external", "eager"):
        return ()
    return default_workers(app)
