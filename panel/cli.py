"""The `stalk` command line. Headless commands import only `embedded`; the UI is loaded on demand."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from stalk.embedded import (
    BrokerError,
    ConfigError,
    Stack,
    StackConfig,
    StackLockedError,
    load_config,
    read_status,
)

EXIT_USAGE = 2


def fail(message: str, code: int = 1) -> None:
    click.echo(f"stalk: error: {message}", err=True)
    sys.exit(code)


def stack_options(fn: Callable) -> Callable:
    """Flags shared by every command that builds a StackConfig."""
    options = [
        click.option("-A", "--app", "app", help="Celery app, package.module:app (default: the demo app)."),
        click.option("--broker", "mode", type=click.Choice(["auto", "redis", "embedded", "eager", "external"]),
                     help="Broker mode (auto: redis-server if installed, else embedded)."),
        click.option("--broker-url", help="External broker URL (redis:// or amqp://); implies external mode."),
        click.option("--result-backend", help="External result backend URL."),
        click.option("--port", type=int, help="Port for Stalk's own broker (default: any free port)."),
        click.option("--appendfsync", type=click.Choice(["always", "everysec", "no"]),
                     help="redis-server AOF fsync policy."),
        click.option("--redis-server", "redis_server", help="Path of the redis-server binary."),
        click.option("--data-dir", type=click.Path(path_type=Path), help="Where Stalk keeps data, logs and state."),
        click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML config file."),
        click.option("--beat/--no-beat", default=None, help="Run celery beat (default: on)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(params: dict[str, Any]) -> StackConfig:
    flags: dict[str, Any] = {}
    broker = {k: params.get(k) for k in ("mode", "result_backend", "port", "appendfsync", "redis_server")}
    broker["url"] = params.get("broker_url")
    broker = {k: v for k, v in broker.items() if v is not None}
    if broker:
        flags["broker"] = broker
    for key in ("app", "beat"):
        if params.get(key) is not None:
            flags[key] = params[key]
    if params.get("data_dir") is not None:
        flags["data_dir"] = str(params["data_dir"])
    try:
        return load_config(flags, params.get("config_file"))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
        raise


def open_stack(config: StackConfig) -> Stack:
    try:
        return Stack(config)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
        raise


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.pass_context
def cli(ctx: click.Context, **params: Any) -> None:
    """Stalk: the whole Celery stack in one terminal. With no command, start the stack and the panel."""
    ctx.obj = params
    if ctx.invoked_subcommand is None:
        run_ui(build_config(params))


def merged(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Group-level flags overlaid by the subcommand's own."""
    base = dict(ctx.obj or {})
    base.update({k: v for k, v in params.items() if v is not None})
    return base


def run_ui(config: StackConfig, load: Any = None) -> None:
    """The panel on `config`'s stack; `load`: a panel.runtime.DemoLoad (`stalk demo --ui`)."""
    from stalk.panel.app import run_panel

    run_panel(config, load)


def start_headless(config: StackConfig) -> tuple[Stack, threading.Event]:
    """Start a stack without the UI; the event is set by Ctrl-C, TERM or HUP."""
    stack = open_stack(config)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    try:
        stack.start(wait=True)
    except (BrokerError, StackLockedError, ConfigError) as exc:
        fail(str(exc))
    return stack, done


@cli.command()
@stack_options
@click.pass_context
def up(ctx: click.Context, **params: Any) -> None:
    """Run the stack without the UI until Ctrl-C."""
    stack, done = start_headless(build_config(merged(ctx, params)))
    click.echo(f"stalk: {stack.broker.mode} broker at {stack.broker.display_url} ({stack.broker.durability})")
    for proc in stack.processes():
        click.echo(f"stalk: {proc.name:<22} {proc.state:<11} pid {proc.pid}")
    click.echo("stalk: stack is up; Ctrl-C stops it")
    try:
        while not done.wait(0.5):
            pass
    finally:
        click.echo("stalk: stopping...")
        stack.stop()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def status(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print the running stack's processes and their states."""
    config = build_config(merged(ctx, params))
    data = read_status(config.paths.state)
    if data is None:
        fail(f"no Stalk is running on data dir {config.data_dir}")
    if as_json:
        for proc in data["processes"]:
            proc.pop("env", None)
        if data.get("broker"):
            data["broker"].pop("broker_url", None)
            data["broker"].pop("backend_url", None)
        click.echo(json.dumps(data, indent=2))
        return
    broker = data.get("broker") or {}
    click.echo(f"broker: {broker.get('mode')}: {broker.get('durability')}")
    click.echo(f"{'NAME':<22} {'STATE':<12} {'PID':>7} {'RESTARTS':>8} {'UPTIME':>8} {'CPU%':>6} {'RSS':>8}  QUEUES")
    for p in data["processes"]:
        stats = p.get("stats") or {}
        rss = f"{stats.get('rss', 0) / 1e6:.0f}M"
        click.echo(f"{p['name']:<22} {p['state']:<12} {p['pid'] or '-':>7} {p['restarts']:>8} "
                   f"{_duration(p['uptime']):>8} {stats.get('cpu_percent', 0):>6.1f} {rss:>8}  "
                   f"{','.join(p['queues'])}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


CHILD_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@cli.command(context_settings=CHILD_CONTEXT)
@click.option("-A", "--app", "app", help="Celery app, package.module:app.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(app: str | None, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (what Stalk starts for each queue group); args after -- go to Celery."""
    from stalk.embedded import run_worker

    try:
        run_worker(app, list(celery_args))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


@cli.command(context_settings=CHILD_CONTEXT)
@click.option("-A", "--app", "app", help="Celery app, package.module:app.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(app: str | None, celery_args: tuple[str, ...]) -> None:
    """Run celery beat; args after -- go to Celery."""
    from stalk.embedded import run_beat

    try:
        run_beat(app, list(celery_args))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)




from stalk.panel import cli_quota  # noqa: E402,F401  (registers `stalk quota`)
from stalk.panel.cli_canvas import chain  # noqa: E402,F401  (registers `stalk chain` and `stalk group`)
from stalk.panel.cli_control import submit  # noqa: E402,F401  (registers submit, revoke, workers, queues, ...)
from stalk.panel.cli_demo import demo  # noqa: E402,F401  (registers `stalk demo`)
from stalk.panel.cli_tasks import tasks  # noqa: E402,F401  (registers `stalk tasks`)
