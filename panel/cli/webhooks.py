"""`stalk webhooks`: the configured webhooks, recent deliveries and failures; `stalk webhooks retry ID`.

Over the running stack's API (that process owns the outbox); without a running stack the outbox file in
the data dir is read (retrying needs the stack: it is what sends)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from stalk.embedded import printable
from stalk.embedded.service import ApiError, StackClient
from stalk.embedded.webhooks import Outbox, outbox_path
from stalk.panel.cli.base import cli, fail, merged, stack_config, stack_options


@cli.group(invoke_without_command=True)
@click.option("--failures", is_flag=True, help="Only deliveries tried and not acknowledged.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Deliveries shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def webhooks(ctx: click.Context, failures: bool, limit: int, as_json: bool, **params: Any) -> None:
    """The [[webhooks]] of stalk.toml: delivery counts, then recent deliveries (newest first)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = merged(ctx, params)  # the group's flags (-A, --data-dir...) for the subcommand
        return
    data_dir = stack_config(merged(ctx, params)).paths.data_dir
    info, rows = _read(data_dir, failures, limit)
    if as_json:
        click.echo(json.dumps({**info, "deliveries": rows}, indent=2))
        return
    if info["hooks"]:
        for hook in info["hooks"]:
            c = hook["counts"]
            click.echo(f"{printable(hook['url'])}  tasks {','.join(hook['tasks'])}  states {','.join(hook['states'])}"
                       f"{'  signed' if hook['signed'] else ''}: {c['delivered']} delivered, {c['pending']} pending, "
                       f"{c['failing']} failing")
    elif info.get("offline"):
        click.echo(f"no running stack: read {info['outbox']}")
    elif info.get("outbox"):  # no [[webhooks]], but [[alerts]] with a url: their notifications are here
        click.echo("no [[webhooks]] configured; the outbox holds the [[alerts]]' notifications")
    else:
        click.echo("no webhooks configured: add a [[webhooks]] table (url = ...) to stalk.toml")
        return
    if not rows:
        click.echo("no failing deliveries" if failures else "no deliveries yet")
        return
    click.echo(f"{'ID':>7} {'STATUS':<9} {'STATE':<8} {'TRIES':>5} {'CREATED':<19} {'TASK':<36} NAME / LAST ERROR")
    for r in rows:
        error = f"  ({r['last_error']})" if r["last_error"] and r["status"] != "delivered" else ""
        click.echo(f"{r['id']:>7} {r['status']:<9} {r['state']:<8} {r['attempts']:>5} {_when(r['created']):<19} "
                   f"{printable(r['task_id'])[:36]:<36} {printable(r['name'] or '?')}{printable(error)}")


@webhooks.command()
@click.argument("delivery_id", type=click.IntRange(1))
@click.pass_context
def retry(ctx: click.Context, delivery_id: int) -> None:
    """Send a pending or failing delivery now (the running stack sends it; its hook's back-off is reset)."""
    data_dir = stack_config(dict(ctx.obj or {})).paths.data_dir
    try:
        client = StackClient.on_data_dir(data_dir)
    except ApiError:
        fail(f"no stack runs on {data_dir}: start it (stalk up); it retries every pending delivery at start")
    try:
        row = client.post(f"/webhooks/deliveries/{delivery_id}/retry")
    except ApiError as exc:
        fail(exc.message)
    finally:
        client.close()
    click.echo(f"delivery {row['id']} ({printable(row['task_id'])} {row['state']}) to {printable(row['hook'])}: "
               "sending now")


def _read(data_dir: Path, failures: bool, limit: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        client = StackClient.on_data_dir(data_dir)
    except ApiError:
        return _read_file(data_dir, failures, limit)
    try:
        return client.get("/webhooks"), client.get("/webhooks/deliveries", limit=limit, failures=failures)
    except ApiError as exc:
        if exc.status == 0:  # no answer: it stopped (or died) meanwhile; its outbox file is the truth
            return _read_file(data_dir, failures, limit)
        fail(exc.message)
    finally:
        client.close()


def _read_file(data_dir: Path, failures: bool, limit: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path = outbox_path(data_dir / "state")
    if not path.exists():
        return {"hooks": [], "outbox": None}, []
    outbox = Outbox(path, create=False)
    try:
        rows = outbox.recent(limit, failures=failures)
    finally:
        outbox.close()
    return {"hooks": [], "outbox": str(path), "offline": True}, [
        {"id": r.id, "hook": r.hook, "task_id": r.task_id, "name": r.name, "state": r.state, "status": r.status,
         "created": r.created, "attempts": r.attempts, "next_at": r.next_at, "last_try": r.last_try,
         "last_status": r.last_status, "last_error": r.last_error, "acked_at": r.acked_at} for r in rows]


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"
