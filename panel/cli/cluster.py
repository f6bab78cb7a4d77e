"""What the control commands share: where the cluster is (`--broker-url URL`, CELERY_BROKER_URL, else the
local running stack, whose data dir's status file has the broker URL and password), running an action
as one clear line on failure, waiting for a result, and printing for people or scripts (`--json`).

Without -A or --data-dir, the local running stack is the one found on the default data dirs
(base.locate): its app, imported from its own directory, checks and routes what is sent. A broker URL
that is such a stack's broker means that stack too."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from stalk.embedded import ConfigError, StackConfig, printable
from stalk.embedded.control import (
    BadInput,
    Control,
    ControlError,
    SubmitError,
    connect_control,
    local_stack,
    user_app_for,
)
from stalk.embedded.service import ApiError, RemoteStack
from stalk.panel.cli.base import EXIT_USAGE, GIVEN, SECONDS, GivenPath, build_config, fail, locate

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
REPLY_TIMEOUT = click.option("--timeout", type=SECONDS, default=1.0, show_default=True,
                             help="Seconds to wait for the workers' replies.")
WAIT_TIMEOUT = click.option("--timeout", type=SECONDS, default=60.0, show_default=True, help="Seconds --wait waits.")


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the cluster is: the local stack's data dir, or a broker URL."""
    options = [
        click.option("--broker-url", "broker_url", metavar="URL", type=GIVEN,
                     help="Broker of any cluster (default: $CELERY_BROKER_URL, else the local running stack)."),
        click.option("--result-backend", metavar="URL", type=GIVEN,
                     help="Result backend (default: $CELERY_RESULT_BACKEND)."),
        click.option("-A", "--app", "app", type=GIVEN,
                     help="Celery app, package.module:app (task registry, routes, beat; default: the running "
                     "stack's)."),
        click.option("--data-dir", type=GivenPath(), help="Data dir of the local stack (default: the running "
                     "stack's, else the app's default)."),
        click.option("--config", "config_file", type=GivenPath(), help="TOML config file."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass
class Target:
    control: Control  # or the running stack's RemoteControl (the same calls, over its API)
    where: str  # for messages: "the local stack" / the redacted broker URL


def connect(ctx: click.Context, params: dict[str, Any], api: bool = True) -> Target:
    """A Control for the cluster the flags (or environment, or local stack) point at: with `api`, the
    calls of a stack running on the data dir go through its API (its app checks and routes them)."""
    group = dict(ctx.obj or {})
    flags = {k: params.get(k) or group.get(k) for k in ("app", "data_dir", "config_file", "broker_url")}
    config, found = locate(build_config({k: v for k, v in flags.items() if v is not None}))
    url = flags["broker_url"] or os.environ.get("CELERY_BROKER_URL")
    try:
        if url and found is None:
            backend = (params.get("result_backend") or group.get("result_backend")
                       or os.environ.get("CELERY_RESULT_BACKEND"))
            return Target(connect_control(config, url, backend, _user_app(config, demo=False)), "broker")
        remote = _api_control(config) if api else None
        if remote is not None:
            return Target(remote, "the local stack")
        local = local_stack(config)
        return Target(connect_control(config, local.broker_url or "", local.backend_url,
                                     _user_app(config, demo=True), local.worker_specs), "the local stack")
    except ControlError as exc:
        fail(str(exc))


def _api_control(config: StackConfig) -> Any:
    """The control calls of the stack running on `config`'s data dir, over its API (None: no stack runs
    there, it serves no API, or it is eager: its tasks run inside it, `local_stack` says so)."""
    try:
        stack = RemoteStack.on_data_dir(config.paths.data_dir)
    except ApiError:
        return None
    if stack.mode == "eager":
        stack.close()
        return None
    return stack.control


def _user_app(config: StackConfig, demo: bool) -> Any:
    app, problem = user_app_for(config, demo)
    if problem:
        click.echo(f"stalk: warning: {printable(problem)}", err=True)
    return app


def run(action: Callable[[], Any]) -> Any:
    """Run a control action; its failure is one clear line and a non-zero exit."""
    try:
        return action()
    except SubmitError as exc:
        message = str(exc)  # a failed send says "not sent" itself
        fail(message if message.startswith("not sent") else f"not sent: {message}", EXIT_USAGE)
    except BadInput as exc:  # a value no worker or queue could take: nothing was sent
        fail(str(exc), EXIT_USAGE)
    except (ControlError, ConfigError, OSError) as exc:
        fail(str(exc))
    except Exception as exc:  # kombu/redis errors: still one line
        fail(f"{type(exc).__name__}: {exc}")


def require_task(control: Control, task: str) -> None:
    """TASK is registered on some worker (or none could say), else one line and exit 2: nothing sent."""
    run(lambda: control.require_task(task))


def require_workers(control: Control, hosts: Iterable[str | None]) -> None:
    """Each named worker answers a ping, else one line naming those that do and exit 2: nothing sent."""
    for host in hosts:
        if host is not None:
            run(functools.partial(control.require_worker, host))


def wait_outcome(result: Any, timeout: float) -> dict[str, Any]:
    """The outcome of a task, a chain (its last step) or a group (every member, the first failure named)."""
    try:
        value = result.get(timeout=timeout, propagate=False)
    except Exception as exc:  # timeout, no result backend
        fail(f"sent {result.id}, but no result within {timeout:g} s: {type(exc).__name__}: {exc}")
    members = getattr(result, "results", None)
    failed = [r for r in members or [result] if r.state != "SUCCESS"]
    if not failed:
        return {"state": "SUCCESS", "result": value}
    first = failed[0]
    reason = first.result if members else value
    where = f"{first.id}: " if members else ""
    return {"state": first.state, "error": f"{where}{type(reason).__name__}: {reason}" if reason is not None else first.state}


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_json_default))
    else:
        human()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
