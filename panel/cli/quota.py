"""`stalk quota`: each quota's used / reserve / remaining and reset time, from the stack's data dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from stalk.embedded.quota import QuotaError, QuotaLedger, QuotaStatus
from stalk.panel.cli.base import cli, fail, merged, stack_config, stack_options


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stack_options
@click.pass_context
def quota(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """Print each quota's usage today and when it resets (works with or without a running stack; without -A
    or --data-dir: the running stack's, else the demo's)."""
    config = stack_config(merged(ctx, params))
    path = config.paths.quota_db
    try:
        statuses = read_statuses(config.paths.data_dir, path)
    except QuotaError as exc:
        fail(str(exc))
    if statuses is None:
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no quotas defined on this stack (no quota db at {path})")
        return
    if as_json:
        click.echo(json.dumps([status_dict(s) for s in statuses], indent=2))
        return
    if not statuses:
        click.echo(f"no quotas defined in {path}")
        return
    click.echo(f"{'QUOTA':<16} {'USED':>9} {'RESERVE':>9} {'REMAINING':>10} {'LIMIT':>9} {'RATE/H':>8}  RESETS")
    for s in statuses:
        click.echo(f"{s.name:<16} {s.used:>9,} {s.reserved:>9,} {s.remaining:>10,} {s.limit:>9,} "
                   f"{s.rate_per_hour:>8,.0f}  {reset_text(s)}{exhaust_text(s)}")


def read_statuses(data_dir: Path, path: Path) -> list[QuotaStatus] | None:
    """Today's numbers from the stack running on `data_dir` (over its API: that process owns the ledger),
    else from the db file; None when there is no quota db. QuotaError: the ledger cannot be read."""
    from stalk.embedded.service import ApiError, RemoteStack

    try:
        remote = RemoteStack.on_data_dir(data_dir)
    except ApiError:  # no stack with an API runs there: read the file
        remote = None
    if remote is not None:
        try:
            return remote.quota.statuses() if remote.quota.exists() else None
        except ApiError:  # it stopped meanwhile: the file is the truth again
            pass
        finally:
            remote.close()
    if not path.exists():
        return None
    with QuotaLedger(path, create=False) as ledger:
        return ledger.statuses()


def status_dict(s: QuotaStatus) -> dict[str, Any]:
    return {
        "name": s.name, "day": s.day.isoformat(), "limit": s.limit, "used": s.used, "reserved": s.reserved,
        "remaining": s.remaining, "priority_reserve": s.priority_reserve, "timezone": s.timezone,
        "resets_at": s.resets_at.isoformat(), "rate_per_hour": s.rate_per_hour,
        "exhausted": s.exhausted, "exhausted_at": s.exhausted_at.isoformat() if s.exhausted_at else None,
        "denied": s.denied, "pending": s.pending, "hourly": s.hourly,
    }


def reset_text(s: QuotaStatus) -> str:
    left = int((s.resets_at - datetime.now(UTC)).total_seconds())
    return f"{s.resets_at:%Y-%m-%d %H:%M} {s.timezone} (in {left // 3600}h{left % 3600 // 60:02d}m)"


def exhaust_text(s: QuotaStatus) -> str:
    if s.exhausted:
        return "  EXHAUSTED (priority calls only)" if s.reserved else "  EXHAUSTED"
    if s.exhausted_at is not None:
        return f"  runs out ~{s.exhausted_at:%H:%M} at this rate"
    return ""
