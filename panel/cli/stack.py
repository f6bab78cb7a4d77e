"""`stalk up|status|env|worker|beat`: the stack's life cycle without the panel (plain `stalk` opens the
panel: the group's own callback, in base), the running stack's broker for your own code, and the Celery
children Stalk starts."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from stalk.embedded import OWN_LOG, ConfigError, printable, read_status
from stalk.panel.cli.base import (
    EXIT_USAGE,
    build_config,
    cli,
    fail,
    merged,
    stack_config,
    stack_options,
    start_headless,
)
from stalk.panel.formatting import uptime_text


@cli.command()
@stack_options
@click.pass_context
def up(ctx: click.Context, **params: Any) -> None:
    """Run the stack without the UI until Ctrl-C."""
    stack, broker, done = start_headless(build_config(merged(ctx, params)))
    click.echo(f"stalk: {broker.mode} broker at {broker.display_url} ({broker.durability})")
    click.echo(f"stalk: data dir {stack.paths.data_dir}")
    for proc in stack.processes():
        click.echo(f"stalk: {proc.name:<22} {proc.state:<11} pid {proc.pid}")
    click.echo("stalk: stack is up; Ctrl-C stops it")
    seen = 0
    try:
        while not done.wait(0.5):
            for line in stack.logs(OWN_LOG, seen):  # Stalk's own lines about the stack, as they come
                click.echo(line.text)
                seen = line.seq
    finally:
        click.echo("stalk: stopping...")
        stack.stop()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def status(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print the running stack's data dir, app, processes and their states (without -A or --data-dir: the
    stack running on a default data dir)."""
    config = stack_config(merged(ctx, params))
    data = read_status(config.paths.state)
    if data is None:
        fail(f"no Stalk is running on data dir {config.paths.data_dir}")
    data.setdefault("data_dir", str(config.paths.data_dir))  # (a status written by an older Stalk)
    if as_json:
        for proc in data["processes"]:
            proc.pop("env", None)
        if data.get("broker"):
            data["broker"].pop("broker_url", None)
            data["broker"].pop("backend_url", None)
        click.echo(json.dumps(data, indent=2))
        return
    broker = data.get("broker") or {}
    click.echo(f"data dir: {data['data_dir']}")
    if data.get("app"):
        click.echo(f"app: {data['app']} (imported from {data.get('app_dir') or '?'})")
    listens = broker.get("socket") or (f"127.0.0.1:{broker['port']}" if broker.get("port") else "")
    click.echo(f"broker: {broker.get('mode')}: {broker.get('durability')}" + (f" (on {listens})" if listens else ""))
    click.echo(f"{'NAME':<22} {'STATE':<12} {'PID':>7} {'RESTARTS':>8} {'UPTIME':>8} {'CPU%':>6} {'RSS':>8}  QUEUES")
    for p in data["processes"]:
        stats = p.get("stats") or {}
        rss = f"{stats.get('rss', 0) / 1e6:.0f}M"
        click.echo(f"{p['name']:<22} {p['state']:<12} {p['pid'] or '-':>7} {p['restarts']:>8} "
                   f"{uptime_text(p['uptime']):>8} {stats.get('cpu_percent', 0):>6.1f} {rss:>8}  "
                   f"{','.join(p['queues'])}")
        if p.get("role") == "thread":  # a thread of the stack died and was restarted (embedded/thread_watch.py)
            click.echo(f"  error: {printable(p.get('last_error') or 'died')}")


@cli.command(name="env")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def env(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print the running stack's broker and result backend for your own code: eval "$(stalk env)" exports
    CELERY_BROKER_URL and CELERY_RESULT_BACKEND (password included: keep the output private)."""
    config = stack_config(merged(ctx, params))
    data = read_status(config.paths.state)
    if data is None:
        fail(f"no Stalk is running on data dir {config.paths.data_dir}")
    broker = data.get("broker") or {}
    if not broker.get("broker_url"):
        fail(f"the stack on data dir {config.paths.data_dir} has no broker ({broker.get('mode')} mode runs its "
             "tasks inside Stalk)")
    values = {"CELERY_BROKER_URL": broker["broker_url"]}
    if broker.get("backend_url"):
        values["CELERY_RESULT_BACKEND"] = broker["backend_url"]
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    for name, value in values.items():
        click.echo(f"export {name}={shlex.quote(value)}")


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
