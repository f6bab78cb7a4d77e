"""`stalk workers|inspect|pool|rate-limit|time-limit`: ask a cluster's workers and change them at run time
(the local running stack or any broker, see cluster.py)."""

from __future__ import annotations

import functools
import json
from typing import Any

import click

from stalk.embedded import printable
from stalk.embedded.control import (
    INSPECT_KINDS,
    Control,
    check_count,
    check_name,
    check_rate,
    check_time_limits,
    pool_name,
)
from stalk.panel.cli.base import checked, cli
from stalk.panel.cli.cluster import (
    JSON_OPTION,
    REPLY_TIMEOUT,
    connect,
    emit,
    require_task,
    require_workers,
    run,
    target_options,
)

# A negative number is a value to check ("n: expected a whole number >= 1, got -1"), not an option.
VALUES_MAY_BE_NEGATIVE = {"ignore_unknown_options": True}


@cli.command()
@REPLY_TIMEOUT
@JSON_OPTION
@target_options
@click.pass_context
def workers(ctx: click.Context, timeout: float, as_json: bool, **params: Any) -> None:
    """Workers that answer: pool, processes, active tasks, processed, queues."""
    control = connect(ctx, params).control
    rows = run(lambda: _worker_rows(control, timeout))
    emit(as_json, rows, lambda: _print_workers(rows))


def _worker_rows(control: Control, timeout: float) -> list[dict[str, Any]]:
    stats = control.inspect("stats", timeout=timeout)
    active = control.inspect("active", timeout=timeout)
    queues = control.inspect("active_queues", timeout=timeout)
    rows = []
    for host in sorted(set(stats) | set(active) | set(queues)):
        s = stats.get(host) or {}
        pool = s.get("pool") or {}
        rows.append({
            "hostname": host, "online": True, "pool": pool_name(pool.get("implementation")) or "",
            "processes": len(pool.get("processes") or []) or pool.get("max-concurrency"),
            "active": len(active.get(host) or []), "processed": sum((s.get("total") or {}).values()),
            "queues": [q.get("name") for q in queues.get(host) or []],
        })
    answered = {r["hostname"].split("@", 1)[0] for r in rows}
    for spec in control.worker_specs:  # supervised workers that did not answer
        name = spec.name.split(":", 1)[-1]
        if name not in answered:
            rows.append({"hostname": name, "online": False, "pool": "", "processes": None, "active": 0,
                         "processed": 0, "queues": list(spec.queues)})
    return rows


def _print_workers(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no worker answered")
        return
    click.echo(f"{'WORKER':<28} {'STATE':<8} {'POOL':<8} {'PROCS':>5} {'ACTIVE':>6} {'PROCESSED':>9}  QUEUES")
    for r in rows:
        click.echo(f"{printable(r['hostname']):<28} {'online' if r['online'] else 'down':<8} {r['pool'] or '-':<8} "
                   f"{r['processes'] if r['processes'] is not None else '-':>5} {r['active']:>6} "
                   f"{r['processed']:>9}  {printable(','.join(map(str, r['queues'])))}")


@cli.command(name="inspect")
@click.argument("kind", type=click.Choice(INSPECT_KINDS))
@click.option("--destination", "-d", multiple=True, help="Only this worker (hostname); repeatable.")
@REPLY_TIMEOUT
@JSON_OPTION
@target_options
@click.pass_context
def inspect_(ctx: click.Context, kind: str, destination: tuple[str, ...], timeout: float, as_json: bool,
             **params: Any) -> None:
    """Ask the workers: active, reserved, scheduled, registered, stats, ping, active_queues..."""
    hosts = [checked(functools.partial(check_name, "worker", host)) for host in destination]
    control = connect(ctx, params).control
    require_workers(control, hosts)
    replies = run(lambda: control.inspect(kind, hosts or None, timeout))
    emit(as_json, replies, lambda: _print_replies(kind, replies))


def _print_replies(kind: str, replies: dict[str, Any]) -> None:
    if not replies:
        click.echo("no worker answered")
        return
    for host, reply in sorted(replies.items()):
        if isinstance(reply, list):
            click.echo(f"{printable(host)}: {len(reply)} {kind}")
            for item in reply:
                click.echo(f"  {printable(_item_text(item))}")
        else:
            click.echo(f"{printable(host)}: {json.dumps(reply, default=str, sort_keys=True)}")


def _item_text(item: Any) -> str:
    if isinstance(item, dict) and "request" in item:  # scheduled: {"eta":..., "request": {...}}
        return f"{item.get('eta')}  {_item_text(item['request'])}"
    if isinstance(item, dict) and "id" in item:
        return f"{item.get('name')} [{item['id']}] args={item.get('args')} kwargs={item.get('kwargs')}"
    if isinstance(item, dict) and "name" in item:
        return str(item["name"])
    return str(item)


@cli.command(context_settings=VALUES_MAY_BE_NEGATIVE)
@click.argument("hostname")
@click.argument("direction", type=click.Choice(["grow", "shrink"]))
@click.argument("n", default="1")
@target_options
@click.pass_context
def pool(ctx: click.Context, hostname: str, direction: str, n: str, **params: Any) -> None:
    """Grow or shrink a worker's pool by N processes (N: 1 or more; default 1)."""
    hostname = checked(lambda: check_name("worker", hostname))
    count = checked(lambda: check_count("n", n))
    control = connect(ctx, params).control
    require_workers(control, [hostname])
    fn = control.pool_grow if direction == "grow" else control.pool_shrink
    run(lambda: fn(hostname, count))
    click.echo(f"{hostname}: pool {direction} by {count}")


@cli.command(name="rate-limit", context_settings=VALUES_MAY_BE_NEGATIVE)
@click.argument("task")
@click.argument("rate")
@click.option("--destination", "-d", help="Only this worker (hostname).")
@target_options
@click.pass_context
def rate_limit(ctx: click.Context, task: str, rate: str, destination: str | None, **params: Any) -> None:
    """Set TASK's rate limit: RATE like 10/m or 2/s; 0 removes it."""
    task, rate = checked(lambda: check_name("task", task)), checked(lambda: check_rate(rate))
    host = None if destination is None else checked(lambda: check_name("worker", destination))
    control = connect(ctx, params).control
    require_task(control, task)
    require_workers(control, [host])
    replies = run(lambda: control.rate_limit(task, rate, host))
    click.echo(f"{task}: rate limit {rate} on {len(replies)} worker(s)")


@cli.command(name="time-limit")
@click.argument("task")
@click.option("--soft", metavar="SECONDS", help="Soft time limit (the task gets SoftTimeLimitExceeded); 0 removes it.")
@click.option("--hard", metavar="SECONDS", help="Hard time limit (the task's process is killed); 0 removes it.")
@click.option("--destination", "-d", help="Only this worker (hostname).")
@target_options
@click.pass_context
def time_limit(ctx: click.Context, task: str, soft: str | None, hard: str | None, destination: str | None,
               **params: Any) -> None:
    """Set TASK's soft/hard time limits on the workers. Celery sets both at once: a limit left out is
    removed, as 0 removes it (the worker's own default then applies)."""
    task = checked(lambda: check_name("task", task))
    limits = checked(lambda: check_time_limits(soft, hard))
    host = None if destination is None else checked(lambda: check_name("worker", destination))
    control = connect(ctx, params).control
    require_task(control, task)
    require_workers(control, [host])
    replies = run(lambda: control.time_limit(task, soft, hard, host))  # checked again there
    shown = " ".join(f"{label}={'none' if value is None else f'{value:g} s'}"
                     for label, value in zip(("soft", "hard"), limits, strict=True))
    click.echo(f"{task}: time limits {shown} on {len(replies)} worker(s)")
