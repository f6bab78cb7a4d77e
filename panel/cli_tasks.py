"""`stalk tasks`: recent tasks from the stack's history db (works while a stack runs: SQLite WAL)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from stalk.embedded.events import ALL_STATES, HistoryError, read_tasks
from stalk.panel.cli import build_config, cli, fail, merged, stack_options


@cli.command()
@click.option("--state", type=click.Choice(ALL_STATES, case_sensitive=False), help="Only tasks in this state.")
@click.option("--name", help="Only tasks whose name contains this text.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def tasks(ctx: click.Context, state: str | None, name: str | None, limit: int, as_json: bool,
          **params: Any) -> None:
    """Print the most recent tasks (newest first) recorded on this data dir."""
    config = build_config(merged(ctx, params))
    path = config.paths.history_db
    if not path.exists():
        click.echo("[]" if as_json else f"no task history yet (no history db at {path})")
        return
    try:
        rows = read_tasks(path, state=state, name=name, limit=limit)
    except HistoryError as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no tasks match")
        return
    click.echo(f"{'TASK ID':<36}  {'STATE':<8}  {'NAME':<28}  {'RECEIVED':<8}  {'RUNTIME':>8}  {'RETRY':>5}  "
               "RESULT / EXCEPTION")
    for row in rows:
        click.echo(table_line(row))


def table_line(row: dict) -> str:
    when = row.get("received") or row.get("sent")
    received = time.strftime("%H:%M:%S", time.localtime(when)) if when else "-"
    runtime = f"{row['runtime']:.3f}s" if row.get("runtime") is not None else "-"
    outcome = row.get("exception") or row.get("result") or ""
    outcome = " ".join(str(outcome).split())
    return (f"{row['task_id']:<36}  {row['state']:<8}  {_cut(row.get('name') or '?', 28):<28}  {received:<8}  "
            f"{runtime:>8}  {row.get('retries') or 0:>5}  {_cut(outcome, 60)}")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
