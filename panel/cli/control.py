"""`stalk submit|revoke|revoked|queues|beat-entries|run-entry`: send, revoke and schedule tasks on a cluster
from the shell: the local running stack or any broker (see cluster.py). The top-level `--broker` is the
stack's broker mode, so these commands take no `--broker`."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from stalk.embedded.control import (
    BeatEntry,
    Control,
    RevokeEntry,
    RevokeStore,
    check_name,
    check_task_id,
    revoke_store_path,
    shown,
    signal_name,
    validate,
)
from stalk.panel.cli.base import EXIT_USAGE, checked, cli, fail, stack_config
from stalk.panel.cli.cluster import (
    JSON_OPTION,
    WAIT_TIMEOUT,
    connect,
    emit,
    run,
    target_options,
    wait_outcome,
)
from stalk.panel.cli.sending import RemoteControl, api_wait, ensure_broker, remote, remote_outcome
from stalk.panel.formatting import clock_time, printable, time_text

#: The commands that send tasks (submit, run-entry, chain, group) go through a running stack's API like the
#: others: its sends check the broker first on a connection with timeouts (embedded/control/preflight.py),
#: so a stopped broker is "broker ... unreachable" within seconds and nothing goes out later. Without a
#: stack (--broker-url), they publish from this process with the shell's fail-fast settings (cluster.py).
SENDS = ("submit", "run-entry", "chain", "group")


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
@WAIT_TIMEOUT
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
    target = connect(ctx, params)  # see SENDS
    api = remote(target.control)
    if api is not None:
        _submit_remote(api, request, task, force, wait, timeout, as_json)
        return
    problems, checked = validate(request, target.control.context())
    blocking = [p.message for p in problems if p.severity == "error" or not force]
    if blocking or checked is None:
        hint = "" if any(p.severity == "error" for p in problems) else " (warnings: --force sends anyway)"
        fail(f"not sent: {'; '.join(blocking)}{hint}", EXIT_USAGE)
    for p in problems:
        click.echo(f"stalk: warning: {printable(p.message)}", err=True)
    result = run(lambda: target.control.send(checked))
    queue = checked.options.get("queue") or _route(target.control, task, checked.args, checked.kwargs)
    out: dict[str, Any] = {"task_id": result.id, "name": task, "queue": queue}
    due = _due(checked.options)
    if due is not None:
        out["eta"] = due.isoformat()  # ISO 8601 with the offset (--json); the text says it in local time
    if wait:
        out.update(wait_outcome(result, timeout))
    emit(as_json, out, lambda: _print_sent(out, wait))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)


def _submit_remote(control: RemoteControl, request: dict[str, Any], task: str, force: bool, wait: bool,
                   timeout: float, as_json: bool) -> None:
    """submit through the running stack's API: the same checks, output and exit codes as a direct send."""
    ensure_broker(control)
    problems = control.validate_submit(request)
    blocking = [p.message for p in problems if p.severity == "error" or not force]
    if blocking:
        hint = "" if any(p.severity == "error" for p in problems) else " (warnings: --force sends anyway)"
        fail(f"not sent: {'; '.join(blocking)}{hint}", EXIT_USAGE)
    for p in problems:
        click.echo(f"stalk: warning: {printable(p.message)}", err=True)
    sent = run(lambda: control.submit(request, force=True, wait=api_wait(wait, timeout)))
    out: dict[str, Any] = {"task_id": sent.id, "name": task, "queue": sent.queue}
    if sent.eta is not None:
        out["eta"] = sent.eta.astimezone().isoformat()
    if wait:
        out.update(remote_outcome(sent, timeout))
    emit(as_json, out, lambda: _print_sent(out, wait))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)


def _route(control: Control, task: str, args: list, kwargs: dict) -> str | None:
    try:
        return control.view.route(task, args, kwargs)
    except Exception:
        return None


def _due(options: dict[str, Any]) -> datetime | None:
    """When a task sent with a countdown or an eta runs: an aware datetime in local time."""
    eta = options.get("eta")
    if isinstance(eta, datetime):
        return eta.astimezone()
    countdown = options.get("countdown")
    if countdown is not None:
        return datetime.fromtimestamp(time.time() + float(countdown)).astimezone()
    return None


def _print_sent(out: dict[str, Any], wait: bool) -> None:
    due = f", due {time_text(out['eta'])}" if out.get("eta") else ""
    click.echo(printable(f"sent {out['name']} [{out['task_id']}] to queue {out['queue'] or '(default)'}{due}"))
    if wait:
        if out["state"] == "SUCCESS":
            click.echo(f"result: {json.dumps(out['result'], default=str)}")
        else:
            click.echo(f"stalk: error: task {out['state']}: {printable(out.get('error'))}", err=True)


# -- revoke -----------------------------------------------------------------------------------

@cli.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also kill the task if it is running.")
@click.option("--signal", default="SIGTERM", show_default=True, help="Signal for --terminate.")
@click.option("--force", is_flag=True, help="Revoke ids no task history, result, queue or worker knows too.")
@JSON_OPTION
@target_options
@click.pass_context
def revoke(ctx: click.Context, task_ids: tuple[str, ...], terminate: bool, signal: str, force: bool,
           as_json: bool, **params: Any) -> None:
    """Revoke tasks (kept in Stalk's store: workers that are down now discard them when they start).

    An id that cannot be a task id is refused; one that nothing knows (not in Stalk's task history or
    revoke store, no result, in no queue, on no worker) is most likely a typo: nothing is revoked
    unless --force."""
    task_ids = tuple(dict.fromkeys(checked(functools.partial(check_task_id, t)) for t in task_ids))
    signal = checked(lambda: signal_name(signal))
    target = connect(ctx, params)
    unknown = [] if force else run(lambda: target.control.unknown_task_ids(task_ids))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        which = ", ".join(f"'{shown(t)}'" for t in unknown[:5]) + more
        fail(f"not revoked: no task known has the id{'s' if len(unknown) > 1 else ''} {which} (not in Stalk's task "
             "history or revoke store, no result in the backend, in no queue, on no worker); --force revokes "
             "anyway", EXIT_USAGE)
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
    config = stack_config({k: v for k in ("app", "data_dir", "config_file", "broker_url")
                           if (v := params.get(k) or group.get(k)) is not None})
    entries = RevokeStore(revoke_store_path(config.paths.data_dir)).entries()
    emit(as_json, [asdict(e) for e in entries], lambda: _print_revoked(entries))


def _print_revoked(entries: list[RevokeEntry]) -> None:
    if not entries:
        click.echo("no revoked tasks")
    for e in entries:
        click.echo(f"{printable(e.task_id)}  {clock_time(e.revoked_at):<19}"
                   f"{'  terminate ' + e.signal if e.terminate else ''}")


# -- queues -----------------------------------------------------------------------------------

@cli.command()
@click.option("--purge", "purge_queue", metavar="QUEUE", help="Delete every message waiting in QUEUE.")
@JSON_OPTION
@target_options
@click.pass_context
def queues(ctx: click.Context, purge_queue: str | None, as_json: bool, **params: Any) -> None:
    """Messages waiting per queue (priority sub-queues included), or purge one."""
    if purge_queue is not None:  # "" is a mistake, not "no --purge"
        purge_queue = checked(lambda: check_name("queue", purge_queue))
    control = connect(ctx, params).control
    if purge_queue is not None:
        removed = run(lambda: control.purge(purge_queue, by="stalk queues --purge"))
        emit(as_json, {"queue": purge_queue, "purged": removed},
             lambda: click.echo(f"purged {removed} message(s) from {purge_queue}"))
        return
    depths = run(control.queue_depths)
    emit(as_json, depths, lambda: _print_depths(depths))


def _print_depths(depths: dict[str, int]) -> None:
    click.echo(f"{'QUEUE':<24} {'WAITING':>8}")
    for name, n in sorted(depths.items()):
        click.echo(f"{printable(name):<24} {n:>8}")


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


def _print_entries(entries: list[BeatEntry]) -> None:
    if not entries:
        click.echo("no beat entries (the app's beat_schedule is empty)")
        return
    click.echo(f"{'ENTRY':<28} {'TASK':<32} {'SCHEDULE':<22} {'RUNS':>5}  {'LAST RUN':<19}  NEXT RUN")
    now = time.time()
    for e in entries:
        # local times, as everywhere (formatting.clock_time); a crontab of another zone names it in SCHEDULE
        last = clock_time(e.last_run.timestamp(), now) if e.last_run and e.total_run_count else "never"  # beat stamps new entries
        nxt = clock_time(e.next_run.timestamp(), now) if e.next_run else "-"
        click.echo(f"{printable(e.name):<28} {printable(e.task):<32} {printable(e.schedule):<22} {e.total_run_count:>5}  {last:<19}  {nxt}")
        if e.last_error and e.last_error_at and (e.last_run is None or e.last_error_at >= e.last_run):
            click.echo(f"  last send failed {clock_time(e.last_error_at.timestamp(), now)}: {printable(e.last_error)}")


@cli.command(name="run-entry")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@WAIT_TIMEOUT
@JSON_OPTION
@target_options
@click.pass_context
def run_entry(ctx: click.Context, name: str, wait: bool, timeout: float, as_json: bool, **params: Any) -> None:
    """Send beat entry NAME now, with its args, kwargs and options."""
    name = checked(lambda: check_name("beat entry", name))
    control = connect(ctx, params).control  # see SENDS
    api = remote(control)
    if api is not None:
        ensure_broker(api)
        result: Any = run(lambda: api.run_beat_entry(name, wait=api_wait(wait, timeout)))
    else:
        result = run(lambda: control.run_beat_entry(name))
    out: dict[str, Any] = {"entry": name, "task_id": result.id}
    if wait:
        out.update(remote_outcome(result, timeout) if api is not None else wait_outcome(result, timeout))
    emit(as_json, out, lambda: click.echo(f"sent {name} [{result.id}]"
                                          + (f": {out.get('result', out.get('error'))}" if wait else "")))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)
