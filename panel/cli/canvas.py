"""`stalk chain` and `stalk group`: Celery canvas from the command line, each step validated like a submit.

A step is `TASK`, `TASK ARGS` or `TASK ARGS KWARGS` with ARGS a JSON list and KWARGS a JSON object:

    stalk chain 'demo.add [2, 3]' 'demo.add [10]' --wait    # add(2, 3) | add(10): 15
    stalk group 'demo.add [1, 1]' 'demo.add [2, 2]' --wait  # [2, 4]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from stalk.embedded import printable
from stalk.panel.cli.base import EXIT_USAGE, cli, fail
from stalk.panel.cli.cluster import (
    JSON_OPTION,
    WAIT_TIMEOUT,
    connect,
    emit,
    run,
    target_options,
    wait_outcome,
)
from stalk.panel.cli.sending import api_wait, ensure_broker, remote, remote_outcome


def parse_step(text: str) -> dict[str, Any]:
    """'demo.add [2, 3] {"x": 1}' -> a submit request; JSON that does not parse is left for the
    validation to name ("step 2: args: not valid JSON ...")."""
    name, _, rest = text.strip().partition(" ")
    request: dict[str, Any] = {"name": name}
    rest = rest.strip()
    if not rest:
        return request
    try:
        _value, end = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        request["args"] = rest
        return request
    request["args"] = rest[:end]
    if rest[end:].strip():
        request["kwargs"] = rest[end:].strip()
    return request


def _send(ctx: click.Context, kind: str, steps: tuple[str, ...], force: bool, wait: bool, timeout: float,
          as_json: bool, params: dict[str, Any]) -> None:
    requests = [parse_step(step) for step in steps]
    control = connect(ctx, params).control  # see control.SENDS
    api = remote(control)
    if api is not None:
        ensure_broker(api)
        result: Any = run(lambda: getattr(api, kind)(requests, force=force, wait=api_wait(wait, timeout)))
    else:
        result = run(lambda: getattr(control, kind)(requests, force=force))
    ids = [r.id for r in result.results] if kind == "group" else [result.id]
    out: dict[str, Any] = {kind: result.id, "steps": len(requests), "task_ids": ids}
    if wait:
        out.update(remote_outcome(result, timeout) if api is not None else wait_outcome(result, timeout))
    emit(as_json, out, lambda: _print(kind, out, wait))
    if wait and out.get("state") != "SUCCESS":
        raise SystemExit(1)


def _print(kind: str, out: dict[str, Any], wait: bool) -> None:
    what = "the last step" if kind == "chain" else "group"
    click.echo(f"sent {kind} of {out['steps']} [{what} {out[kind]}]")
    if kind == "group":
        click.echo("tasks: " + " ".join(out["task_ids"]))
    if wait:
        if out["state"] == "SUCCESS":
            click.echo(f"result: {json.dumps(out['result'], default=str)}")
        else:
            click.echo(f"stalk: error: {out['state']}: {printable(out.get('error'))}", err=True)


def canvas_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.argument("steps", nargs=-1, required=True),
        click.option("--force", is_flag=True, help="Send despite warnings (never despite errors)."),
        click.option("--wait", is_flag=True, help="Wait for the result and print it."),
        WAIT_TIMEOUT,
        JSON_OPTION, target_options, click.pass_context,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.command()
@canvas_options
def chain(ctx: click.Context, steps: tuple[str, ...], force: bool, wait: bool, timeout: float, as_json: bool,
          **params: Any) -> None:
    """Run STEPs one after another, each result passed as the next one's first argument.

    Every step is validated first: nothing is sent when one is wrong. Each STEP is 'TASK', 'TASK [ARGS]'
    or 'TASK [ARGS] {KWARGS}' (JSON), e.g. stalk chain 'demo.add [2, 3]' 'demo.add [10]' --wait."""
    if len(steps) < 2:
        fail("a chain needs two steps or more (one step: stalk submit)", EXIT_USAGE)
    _send(ctx, "chain", steps, force, wait, timeout, as_json, params)


@cli.command()
@canvas_options
def group(ctx: click.Context, steps: tuple[str, ...], force: bool, wait: bool, timeout: float, as_json: bool,
          **params: Any) -> None:
    """Run STEPs in parallel; --wait prints their results in order.

    Every step is validated first: nothing is sent when one is wrong. Each STEP is 'TASK', 'TASK [ARGS]'
    or 'TASK [ARGS] {KWARGS}' (JSON), e.g. stalk group 'demo.add [1, 1]' 'demo.add [2, 2]' --wait."""
    _send(ctx, "group", steps, force, wait, timeout, as_json, params)
