"""`stalk submit|revoke|revoked|workers|queues|inspect|beat-entries|run-entry|pool|rate-limit|time-limit`:
control a cluster from the shell. Against the local running stack (broker URL and password from its
data dir's status file) or any broker (`--broker-url URL`, CELERY_BROKER_URL). The top-level `--broker`
is the stack's broker mode, so these commands take no `--broker`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import click

from stalk.embedded import ConfigError
from stalk.embedded.control import (
    INSPECT_KINDS,
    Control,
    ControlError,
    RevokeStore,
    SubmitError,
    connect_control,
    local_stack,
    pool_name,
    revoke_store_path,
    user_app_for,
    validate,
)
from stalk.panel.cli import EXIT_USAGE, build_config, cli, fail

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def target_options(fn: Callable) -> Callable:
    """Where the cluster is: the local stack's data dir, or a broker URL."""
    options = [
        click.option("--broker-url", "broker_url", metavar="URL",
                     help="Broker of any cluster (default: $CELERY_BROKER_URL, else the local running stack)."),
        click.option("--result-backend", metavar="URL", help="Result backend (default: $CELERY_RESULT_BACKEND)."),
        click.option("-A", "--app", "app", help="Celery app, package.module:app (task registry, routes, beat)."),
        click.option("--data-dir", type=click.Path(), help="Data dir of the local stack."),
        click.option("--config", "config_file", type=click.Path(), help="TOML config file."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass
class Target:
    control: Control
    where: str  # for messages: "the local stack" / the redacted broker URL


def connect(ctx: click.Context, params: dict[str, Any]) -> Target:
    """A Control for the cluster the flags (or environment, or local stack) point at."""
    group = dict(ctx.obj or {})
    flags = {k: params.get(k) or group.get(k) for k in ("app", "data_dir", "config_file")}
    config = build_config({k: v for k, v in flags.items() if v is not None})
    url = params.get("broker_url") or group.get("broker_url") or os.environ.get("CELERY_BROKER_URL")
    try:
        if url:
            backend = (params.get("result_backend") or group.get("result_backend")
                       or os.environ.get("CELERY_RESULT_BACKEND"))
            return Target(connect_control(config, url, backend, _user_app(config, demo=False)), "broker")
        local = local_stack(config)
        return Target(connect_control(config, local.broker_url or "", local.backend_url,
                                     _user_app(config, demo=True), local.worker_specs), "the local stack")
    except ControlError as exc:
        fail(str(exc))
        raise


def _user_app(config: Any, demo: bool) -> Any:
    app, problem = user_app_for(config, demo)
    if problem:
        click.echo(f"stalk: warning: {problem}", err=True)
    return app


def run(action: Callable[[], Any]) -> Any:
    """Run a control action; its failure is one clear line and a non-zero exit."""
    try:
        return action()
    except SubmitError as exc:
        fail(f"not sent: {exc}", EXIT_USAGE)
    except (ControlError, ConfigError, OSError) as exc:
        fail(str(exc))
    except Exception as exc:  # kombu/redis errors: still one line
        fail(f"{type(exc).__name__}: {exc}")


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_json_default))
    else:
        human()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# -- submit -----------------------------------------------------------------------------------

@cli.command()
@click.argument("task")
@click.option("--args", "args_", default=None, metavar="JSON", help="Positional arguments, a JSON list.")
@click.option("--kwargs", "kwargs_", default=None, metavar="JSON", help="Keyword arguments, a JSON object.")
@click.option("--queue", "-Q", help="Queue to send to (default: the task's route).")
@click.option("--priority", help="0-9.")
@click.option("--countdown", help="Run after this many seconds.")
@click.option("--eta", help="Run at this ISO 8601 time (naive means UTC).")
@click.option("--expires", help="Seconds, or an ISO 8601 time, after which it is discarded.")
@click.option("--task-id", help="Use this task id instead of a new uuid.")
@click.option("--retry/--no-retry", default=None, help="Retry publishing if the broker is unreachable.")
@click.option("--retry-policy", metavar="JSON", help='e.g. {"max_retries": 3, "interval_start": 0}.')
@click.option("--force", is_flag=True, help="Send despite warnings (never despite errors).")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds --wait waits.")
@JSON_OPTION
@target_options
@click.pass_context
def submit(ctx: click.Context, task: str, args_: str | None, kwargs_: str | None, force: bool, wait: bool,
           timeout: float, as_json: bool, **params: Any) -> None:
    """Send TASK by name (validated first: nothing is sent when anything is wrong)."""
    request = {"name": task, "args": args_, "kwargs": kwargs_}
    for key in ("queue", "priority", "countdown", "eta", "expires", "task_id", "retry", "retry_policy"):
        if params.get(key) is not None:
            request[key] = params.pop(key)
    target = connect(ctx, params)
    problems, checked = validate(request, target.control.context())
    blocking = [p.message for p in problems if p.severity == "error" or not force]
    if blocking or checked is None:
        hint = "" if any(p.severity == "error" for p in problems) else " (warnings: --force sends anyway)"
        fail(f"not sent: {'; '.join(blocking)}{hint}", EXIT_USAGE)
    for p in problems:
        click.echo(f"stalk: warning: {p.message}", err=True)
    result = run(lambda: target.control.send(checked))
    queue = checked.options.get("queue") or _route(target.control, task, checked.args, checked.kwargs)
    out: dict[str, Any] = {"task_id": result.id, "name": task, "queue": queue}
    if wait:
        out.update(wait_outcome(result, timeout))
    emit(as_json, out, lambda: _print_sent(out, wait))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)


def _route(control: Control, task: str, args: list, kwargs: dict) -> str | None:
    try:
        return control.view.route(task, args, kwargs)
    except Exception:
        return None


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


def _print_sent(out: dict[str, Any], wait: bool) -> None:
    click.echo(f"sent {out['name']} [{out['task_id']}] to queue {out['queue'] or '(default)'}")
    if wait:
        if out["state"] == "SUCCESS":
            click.echo(f"result: {json.dumps(out['result'], default=str)}")
        else:
            click.echo(f"stalk: error: task {out['state']}: {out.get('error')}", err=True)


# -- revoke -----------------------------------------------------------------------------------

@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also kill the task if it is running.")
@click.option("--signal", default="SIGTERM", show_default=True, help="Signal for --terminate.")
@JSON_OPTION
@target_options
@click.pass_context
def revoke(ctx: click.Context, task_ids: tuple[str, ...], terminate: bool, signal: str, as_json: bool,
           **params: Any) -> None:
    """Revoke tasks (kept in Stalk's store: workers that are down now discard them when they start)."""
    target = connect(ctx, params)
    run(lambda: target.control.revoke_many(task_ids, terminate=terminate, signal=signal))
    verb = "terminated" if terminate else "revoked"
    emit(as_json, {"revoked": list(task_ids), "terminate": terminate, "signal": signal},
         lambda: click.echo(f"{verb} {len(task_ids)} task(s): {' '.join(task_ids)}"))


@cli.command()
@JSON_OPTION
@target_options
@click.pass_context
def revoked(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """List the revokes in Stalk's store (re-applied whenever a worker starts)."""
    group = dict(ctx.obj or {})
    config = build_config({k: v for k in ("data_dir", "config_file")
                           if (v := params.get(k) or group.get(k)) is not None})
    entries = RevokeStore(revoke_store_path(config.data_dir)).entries()
    emit(as_json, [asdict(e) for e in entries], lambda: [
        click.echo(f"{e.task_id}  {datetime.fromtimestamp(e.revoked_at):%Y-%m-%d %H:%M:%S}"
                   f"{'  terminate ' + e.signal if e.terminate else ''}") for e in entries
    ] or click.echo("no revoked tasks"))


# -- workers, inspect, remote control ---------------------------------------------------------

@cli.command()
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Seconds to wait for replies.")
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
        click.echo(f"{r['hostname']:<28} {'online' if r['online'] else 'down':<8} {r['pool'] or '-':<8} "
                   f"{r['processes'] if r['processes'] is not None else '-':>5} {r['active']:>6} "
                   f"{r['processed']:>9}  {','.join(r['queues'])}")


@cli.command(name="inspect")
@click.argument("kind", type=click.Choice(INSPECT_KINDS))
@click.option("--destination", "-d", multiple=True, help="Only this worker (hostname); repeatable.")
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Seconds to wait for replies.")
@JSON_OPTION
@target_options
@click.pass_context
def inspect_(ctx: click.Context, kind: str, destination: tuple[str, ...], timeout: float, as_json: bool,
             **params: Any) -> None:
    """Ask the workers: active, reserved, scheduled, registered, stats, ping, active_queues..."""
    control = connect(ctx, params).control
    replies = run(lambda: control.inspect(kind, list(destination) or None, timeout))
    emit(as_json, replies, lambda: _print_replies(kind, replies))


def _print_replies(kind: str, replies: dict[str, Any]) -> None:
    if not replies:
        click.echo("no worker answered")
        return
    for host, reply in sorted(replies.items()):
        if isinstance(reply, list):
            click.echo(f"{host}: {len(reply)} {kind}")
            for item in reply:
                click.echo(f"  {_item_text(item)}")
        else:
            click.echo(f"{host}: {json.dumps(reply, default=str, sort_keys=True)}")


def _item_text(item: Any) -> str:
    if isinstance(item, dict) and "request" in item:  # scheduled: {"eta":..., "request": {...}}
        return f"{item.get('eta')}  {_item_text(item['request'])}"
    if isinstance(item, dict) and "id" in item:
        return f"{item.get('name')} [{item['id']}] args={item.get('args')} kwargs={item.get('kwargs')}"
    if isinstance(item, dict) and "name" in item:
        return str(item["name"])
    return str(item)


@cli.command()
@click.argument("hostname")
@click.argument("direction", type=click.Choice(["grow", "shrink"]))
@click.argument("n", type=int, default=1)
@target_options
@click.pass_context
def pool(ctx: click.Context, hostname: str, direction: str, n: int, **params: Any) -> None:
    """Grow or shrink a worker's pool by N processes."""
    control = connect(ctx, params).control
    fn = control.pool_grow if direction == "grow" else control.pool_shrink
    run(lambda: fn(hostname, n))
    click.echo(f"{hostname}: pool {direction} by {n}")


@cli.command(name="rate-limit")
@click.argument("task")
@click.argument("rate")
@click.option("--destination", "-d", help="Only this worker (hostname).")
@target_options
@click.pass_context
def rate_limit(ctx: click.Context, task: str, rate: str, destination: str | None, **params: Any) -> None:
    """Set TASK's rate limit: RATE like 10/m or 2/s; 0 removes it."""
    control = connect(ctx, params).control
    replies = run(lambda: control.rate_limit(task, rate, destination))
    click.echo(f"{task}: rate limit {rate} on {len(replies)} worker(s)")


@cli.command(name="time-limit")
@click.argument("task")
@click.option("--soft", type=float, help="Soft time limit, seconds.")
@click.option("--hard", type=float, help="Hard time limit, seconds.")
@click.option("--destination", "-d", help="Only this worker (hostname).")
@target_options
@click.pass_context
def time_limit(ctx: click.Context, task: str, soft: float | None, hard: float | None, destination: str | None,
               **params: Any) -> None:
    """Set TASK's soft/hard time limits on the workers."""
    control = connect(ctx, params).control
    replies = run(lambda: control.time_limit(task, soft, hard, destination))
    click.echo(f"{task}: time limits soft={soft} hard={hard} on {len(replies)} worker(s)")


# -- queues -----------------------------------------------------------------------------------

@cli.command()
@click.option("--purge", "purge_queue", metavar="QUEUE", help="Delete every message waiting in QUEUE.")
@JSON_OPTION
@target_options
@click.pass_context
def queues(ctx: click.Context, purge_queue: str | None, as_json: bool, **params: Any) -> None:
    """Messages waiting per queue (priority sub-queues included), or purge one."""
    control = connect(ctx, params).control
    if purge_queue:
        removed = run(lambda: control.purge(purge_queue))
        emit(as_json, {"queue": purge_queue, "purged": removed},
             lambda: click.echo(f"purged {removed} message(s) from {purge_queue}"))
        return
    depths = run(control.queue_depths)
    emit(as_json, depths, lambda: [click.echo(f"{'QUEUE':<24} {'WAITING':>8}")] + [
        click.echo(f"{name:<24} {n:>8}") for name, n in sorted(depths.items())])


# -- beat -------------------------------------------------------------------------------------

@cli.command(name="beat-entries")
@JSON_OPTION
@target_options
@click.pass_context
def beat_entries(ctx: click.Context, as_json: bool, **params: Any) -> None:
    """The app's beat schedule: each entry's task, schedule, last and next run, run count."""
    control = connect(ctx, params).control
    entries = run(control.beat_entries)
    emit(as_json, [asdict(e) for e in entries], lambda: _print_entries(entries))


def _print_entries(entries: list[Any]) -> None:
    if not entries:
        click.echo("no beat entries (the app's beat_schedule is empty)")
        return
    click.echo(f"{'ENTRY':<28} {'TASK':<32} {'SCHEDULE':<22} {'RUNS':>5}  {'LAST RUN':<19}  NEXT RUN")
    for e in entries:
        last = f"{e.last_run:%Y-%m-%d %H:%M:%S}" if e.last_run and e.total_run_count else "never"  # beat stamps new entries
        nxt = f"{e.next_run:%Y-%m-%d %H:%M:%S}" if e.next_run else "-"
        click.echo(f"{e.name:<28} {e.task:<32} {e.schedule:<22} {e.total_run_count:>5}  {last:<19}  {nxt}")


@cli.command(name="run-entry")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds --wait waits.")
@JSON_OPTION
@target_options
@click.pass_context
def run_entry(ctx: click.Context, name: str, wait: bool, timeout: float, as_json: bool, **params: Any) -> None:
    """Send beat entry NAME now, with its args, kwargs and options."""
    control = connect(ctx, params).control
    result = run(lambda: control.run_beat_entry(name))
    out: dict[str, Any] = {"entry": name, "task_id": result.id}
    if wait:
        out.update(wait_outcome(result, timeout))
    emit(as_json, out, lambda: click.echo(f"sent {name} [{result.id}]"
                                          + (f": {out.get('result', out.get('error'))}" if wait else "")))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)
