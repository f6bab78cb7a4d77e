"""`stalk tasks`: recent tasks from the running stack's API when one runs on the data dir (its event store:
what the panel shows), else from the stack's history db."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from stalk.embedded.events import ALL_STATES, HistoryError, read_tasks
from stalk.panel.cli.base import GIVEN, cli, fail, merged, stack_config, stack_options
from stalk.panel.formatting import clock_time, clock_width, printable

API_TIMEOUT = 5.0  # s: a stack too busy to answer sooner is read from its history db instead
API_MAX_LIMIT = 5000  # tasks the API lists per request


@cli.command()
@click.option("--state", type=click.Choice(ALL_STATES, case_sensitive=False), help="Only tasks in this state.")
@click.option("--name", type=GIVEN, help="Only tasks whose name contains this text.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def tasks(ctx: click.Context, state: str | None, name: str | None, limit: int, as_json: bool,
          **params: Any) -> None:
    """Print the most recent tasks (newest first) recorded on this data dir (without -A or --data-dir: the
    running stack's, else the demo's)."""
    config = stack_config(merged(ctx, params))
    rows = running_tasks(config.paths.data_dir, state, name, limit)
    if rows is None:
        path = config.paths.history_db
        if not path.exists():
            click.echo("[]" if as_json else f"no task history yet (no history db at {path})")
            return
        try:
            rows = read_tasks(path, state=state, name=name, limit=limit)
        except HistoryError as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps([iso_times(row) for row in rows], indent=2, default=str))
        return
    if not rows:
        click.echo("no tasks match")
        return
    now = time.time()
    width = clock_width([row.get("received") or row.get("sent") for row in rows], now)
    click.echo(f"{'TASK ID':<36}  {'STATE':<8}  {'NAME':<28}  {'RECEIVED':<{width}}  {'RUNTIME':>8}  {'RETRY':>5}  "
               "RESULT / EXCEPTION")
    for row in rows:
        click.echo(table_line(row, now, width))


def running_tasks(data_dir: Path, state: str | None, name: str | None, limit: int) -> list[dict] | None:
    """The newest tasks of the stack running on `data_dir`, as its API lists them (the rows read_tasks
    gives); None when no stack with an API runs there, or it cannot answer now (its event store not up)."""
    from stalk.embedded.service import ApiError, StackClient

    if limit > API_MAX_LIMIT:  # more than the API gives at once: the history has them all
        return None
    try:
        with StackClient.on_data_dir(data_dir, timeout=API_TIMEOUT) as client:
            page = client.get("/tasks", state=state, name=name, limit=limit, count="false")
    except ApiError:
        return None
    return page["tasks"]


TIME_FIELDS = ("sent", "received", "started", "finished", "updated", "retried")


def iso_times(row: dict) -> dict:
    """The row for --json: its times ISO 8601 with the local offset (eta and expires are already ISO),
    its attempts' too."""
    listed = {key: _iso(value) if key in TIME_FIELDS else value for key, value in row.items()}
    if row.get("attempts"):
        listed["attempts"] = [{**attempt, "at": _iso(attempt.get("at"))} for attempt in row["attempts"]]
    return listed


def _iso(value: Any) -> Any:
    return datetime.fromtimestamp(value).astimezone().isoformat() if isinstance(value, int | float) else value


def attempts_mark(row: dict) -> str:
    """"requeued 1x retried 2x": how often the task ran again ("" when it did not)."""
    kinds = [attempt.get("kind") for attempt in row.get("attempts") or ()]
    return " ".join(f"{word} {kinds.count(kind)}x" for kind, word in (("requeued", "requeued"), ("retry", "retried"))
                    if kind in kinds)


def table_line(row: dict, now: float | None = None, width: int = 8) -> str:
    when = row.get("received") or row.get("sent")
    received = clock_time(when, now)  # local time, the date in front when not today
    runtime = f"{row['runtime']:.3f}s" if row.get("runtime") is not None else "-"
    outcome = row.get("exception") or row.get("result") or ""
    outcome = printable(" ".join(str(outcome).split()))
    mark = attempts_mark(row)
    if mark:
        outcome = f"{mark}  {outcome}"
    return (f"{printable(row['task_id']):<36}  {printable(row['state']):<8}  {_cut(printable(row.get('name') or '?'), 28):<28}  {received:<{width}}  "
            f"{runtime:>8}  {row.get('retries') or 0:>5}  {_cut(outcome, 60)}")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
