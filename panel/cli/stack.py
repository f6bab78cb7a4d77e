"""`stalk up|status|env|worker|beat`: the stack's life cycle without the panel (plain `stalk` opens the
panel: the group's own callback, in base), the running stack's broker for your own code, and the Celery
children Stalk starts."""

from __future__ import annotations

import json
import os
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stalk.embedded import OWN_LOG, ConfigError, printable, read_status
from stalk.panel.cli.base import (
    EXIT_USAGE,
    GIVEN,
    SECONDS,
    GivenPath,
    api_port_option,
    build_config,
    cli,
    fail,
    merged,
    run_ui,
    stack_config,
    stack_options,
    start_headless,
)
from stalk.panel.formatting import uptime_text

if TYPE_CHECKING:
    from stalk.embedded.service import StackClient


@cli.command()
@stack_options
@api_port_option
@click.pass_context
def up(ctx: click.Context, **params: Any) -> None:
    """Run the stack without the UI until Ctrl-C or `stalk down`."""
    stack, broker, done = start_headless(build_config(merged(ctx, params)))
    click.echo(f"stalk: {broker.mode} broker at {broker.display_url} ({broker.durability})")
    click.echo(f"stalk: data dir {stack.paths.data_dir}")
    for proc in stack.processes():
        click.echo(f"stalk: {proc.name:<22} {proc.state:<11} pid {proc.pid}")
    click.echo("stalk: stack is up; Ctrl-C (or `stalk down`) stops it")
    seen = 0
    try:
        while not (done.wait(0.5) or stack.stop_requested.is_set()):
            for line in stack.logs(OWN_LOG, seen):  # Stalk's own lines about the stack, as they come
                click.echo(line.text)
                seen = line.seq
    finally:
        for line in stack.logs(OWN_LOG, seen):  # why it stops (the panel that started it went away, ...)
            click.echo(line.text)
        click.echo("stalk: stopping...")
        stack.stop()


@cli.command()
@click.option("--url", type=GIVEN, help="The stack's API on loopback TCP (http://127.0.0.1:PORT).")
@click.option("--token-file", type=GivenPath(path_type=Path, dir_okay=False),
              help="With --url: the file holding the API token (<data dir>/state/api.token).")
@stack_options
@click.pass_context
def attach(ctx: click.Context, url: str | None, token_file: Path | None, **params: Any) -> None:
    """Open the panel on a stack already running (started by `stalk up`, or left running by a panel);
    quitting the panel leaves it running."""
    from stalk.embedded.service import ApiError
    from stalk.panel.runtime import RemoteSource

    if (url is None) != (token_file is None):
        fail("--url and --token-file go together (the token is in <data dir>/state/api.token)", EXIT_USAGE)
    config = stack_config(merged(ctx, params))
    client = _url_client(url, token_file) if url and token_file else _data_dir_client(config.paths.data_dir)
    try:
        client.get("/stack")
    except ApiError as exc:
        client.close()
        fail(exc.message)
    run_ui(config, source=RemoteSource(config.paths.data_dir, client=lambda: client))


def _url_client(url: str, token_file: Path) -> StackClient:
    from stalk.embedded.service import StackClient

    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        fail(f"cannot read the token file {token_file}: {exc.strerror}")
    return StackClient(token, url=url)


def _data_dir_client(data_dir: Path) -> StackClient:
    from stalk.embedded.service import ApiError, StackClient

    try:
        return StackClient.on_data_dir(data_dir)
    except ApiError as exc:
        fail(exc.message)


@cli.command()
@click.option("--timeout", type=SECONDS, help="Seconds to wait for it to stop (default: the grace period + 30).")
@stack_options
@click.pass_context
def down(ctx: click.Context, timeout: float | None, **params: Any) -> None:
    """Stop the stack running on the data dir (workers finish their tasks first) and wait until it is gone."""
    from stalk.embedded.service import ApiError, StackClient, wait_gone

    config = stack_config(merged(ctx, params))
    data_dir = config.paths.data_dir
    data = read_status(config.paths.state)
    if data is None:
        fail(f"no Stalk is running on data dir {data_dir}")
    pid = int(data.get("pid") or 0)
    try:
        with StackClient.on_data_dir(data_dir) as client:
            client.post("/stack/stop")
    except ApiError:  # a stack without an API (an older Stalk): its `stalk up` stops on TERM
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as exc:
            fail(f"cannot stop the Stalk on {data_dir} (pid {pid}): {exc.strerror}")
    click.echo(f"stalk: stopping the stack on {data_dir} (pid {pid}): workers finish their current tasks")
    wait = timeout if timeout is not None else config.supervisor.grace_period + 30
    if not wait_gone(data_dir, pid, wait):
        fail(f"the stack on {data_dir} (pid {pid}) is still running after {wait:g} s")
    click.echo("stalk: stopped")


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
    live = _live_status(config.paths.data_dir) if data.get("api") else None
    if live is not None:
        data["stack"] = {k: live.get(k) for k in ("pid", "ready", "detached", "started_by_panel", "started_at")}
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
    click.echo(f"stack: pid {data.get('pid')}, {_how_it_runs(live)}")
    api = data.get("api") or {}
    if api.get("socket"):
        click.echo(f"api: {api['socket']}" + (f" and {api['url']}" if api.get("url") else "")
                   + ("" if live is not None else " (not answering)"))
    flower = api.get("flower") or {}
    if flower.get("url"):
        auth = "basic auth or token" if flower.get("auth") else "no auth: loopback only"
        click.echo(f"flower api: {flower['url']}/api/... and /metrics ({auth})")
    elif flower.get("problem"):
        click.echo(f"flower api: not served: {flower['problem']}")
    click.echo(f"{'NAME':<22} {'STATE':<12} {'PID':>7} {'RESTARTS':>8} {'UPTIME':>8} {'CPU%':>6} {'RSS':>8}  QUEUES")
    for p in data["processes"]:
        stats = p.get("stats") or {}
        rss = f"{stats.get('rss', 0) / 1e6:.0f}M"
        click.echo(f"{p['name']:<22} {p['state']:<12} {p['pid'] or '-':>7} {p['restarts']:>8} "
                   f"{uptime_text(p['uptime']):>8} {stats.get('cpu_percent', 0):>6.1f} {rss:>8}  "
                   f"{','.join(p['queues'])}")
        if p.get("role") == "thread":  # a thread of the stack died and was restarted (embedded/thread_watch.py)
            click.echo(f"  error: {printable(p.get('last_error') or 'died')}")


def _live_status(data_dir: Path) -> dict[str, Any] | None:
    """GET /stack of the stack on `data_dir`, or None when its API does not answer."""
    from stalk.embedded.service import ApiError, StackClient

    try:
        with StackClient.on_data_dir(data_dir, timeout=3.0) as client:
            return client.get("/stack")
    except ApiError:
        return None


def _how_it_runs(live: dict[str, Any] | None) -> str:
    if live is None:
        return "running"
    if live.get("detached"):
        return "detached: it runs until `stalk down`"
    if live.get("started_by_panel"):
        return "started by a panel: it stops with that panel (unless you leave it running)"
    return "headless (`stalk up`): it runs until Ctrl-C there or `stalk down`"


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
