"""`stalk alerts`: the [[alerts]] rules with their states, then the newest firings and resolutions.

Over the running stack's API (that process evaluates the rules); without a running stack the rules of
stalk.toml are shown with the last state the history file in the data dir recorded."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from stalk.embedded import StackConfig, printable
from stalk.embedded.alerts import AlertHistory, describe, history_path
from stalk.embedded.service import ApiError, StackClient
from stalk.panel.cli.base import cli, fail, stack_config, stack_options

NONE = "no alerts configured: add [[alerts]] to stalk.toml (kind = \"task_failures\", ...)"


@cli.command()
@click.option("--limit", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="Recent firings and resolutions shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (the API's GET /alerts).")
@stack_options
def alerts(limit: int, as_json: bool, **params: Any) -> None:
    """The [[alerts]] of stalk.toml: each rule's state, then recent firings and resolutions (newest first)."""
    config = stack_config(params)
    info = _read(config, limit)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if info.get("offline") and info["rules"]:
        click.echo(f"no running stack: the last states recorded in {info['offline']}")
    if not info["rules"]:
        click.echo(NONE)
        return
    click.echo(f"{'RULE':<28} {'KIND':<14} {'STATE':<8} {'SINCE':<19} {'VALUE/THRESHOLD':<16} DESCRIPTION")
    for r in info["rules"]:
        value = f"{_number(r['value'])}/{_number(r['threshold'])}"
        click.echo(f"{printable(r['name'])[:28]:<28} {r['kind']:<14} {r['state']:<8} {_when(r['since']):<19} "
                   f"{value:<16} {printable(r['description'])}")
        if r["message"]:
            click.echo(f"  {printable(r['message'])}")
    if not info["recent"]:
        click.echo("no firings yet")
        return
    click.echo("")
    click.echo(f"{'ID':>6} {'AT':<19} {'STATE':<8} {'RULE':<28} MESSAGE")
    for e in info["recent"]:
        click.echo(f"{e['id']:>6} {_when(e['at']):<19} {e['state']:<8} {printable(e['rule'])[:28]:<28} "
                   f"{printable(e['message'])}")


def _read(config: StackConfig, limit: int) -> dict[str, Any]:
    data_dir = config.paths.data_dir
    try:
        client = StackClient.on_data_dir(data_dir)
    except ApiError:
        return _read_file(config, limit)
    try:
        return client.get("/alerts", limit=limit)
    except ApiError as exc:
        if exc.status == 0:  # no answer: it stopped (or died) meanwhile; its history file is the truth
            return _read_file(config, limit)
        fail(exc.message)
    finally:
        client.close()


def _read_file(config: StackConfig, limit: int) -> dict[str, Any]:
    path = history_path(config.paths.state)
    rules = [{"name": r.name, "kind": r.kind, "description": describe(r), "state": "unknown", "since": None,
              "value": None, "threshold": r.threshold, "message": None} for r in config.alerts]
    if not path.exists():
        return {"rules": rules, "recent": [], "offline": str(path)}
    history = AlertHistory(path)
    try:
        last, recent = history.last_states(), history.recent(limit) if limit else []
    finally:
        history.close()
    for rule in rules:
        event = last.get(str(rule["name"]))
        if event is not None:
            rule.update(state="firing" if event.state == "firing" else "ok", since=event.at, value=event.value,
                        message=event.message)
    return {"rules": rules, "recent": [{"id": e.id, "rule": e.rule, "state": e.state, "at": e.at,
                                        "message": e.message} for e in recent], "offline": str(path)}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"

