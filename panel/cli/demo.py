"""`stalk demo`: start the stack on the built-in demo app and feed it a steady, realistic load."""

from __future__ import annotations

import threading
import time
from typing import Any

import click

from stalk.embedded import DEMO_APP
from stalk.panel.cli.base import (
    EXIT_USAGE,
    SECONDS,
    build_config,
    cli,
    fail,
    merged,
    panel_source,
    run_ui,
    stack_options,
    start_headless,
)

REPORT_EVERY = 5.0


@cli.command()
@click.option("--rate", default="2/s", show_default=True, help="Tasks to submit: N per second (N, N/s, N/m, N/h).")
@click.option("--duration", type=SECONDS,
              help="Stop the load and the stack after this many seconds (default: until Ctrl-C).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the task mix.")
@click.option("--ui", is_flag=True, help="Open the panel and watch the load there (--duration stops the load, "
              "not the panel).")
@stack_options
@click.pass_context
def demo(ctx: click.Context, rate: str, duration: float | None, seed: int, ui: bool, **params: Any) -> None:
    """Run the stack with the demo app and a steady mix of demo tasks, without the UI (or with --ui), until
    Ctrl-C."""
    from stalk.embedded.demo import LoadGenerator, parse_rate

    try:
        per_second = parse_rate(rate)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    params = merged(ctx, params)
    if params.get("app") not in (None, DEMO_APP):
        fail(f"stalk demo runs the built-in demo app; drop -A {params['app']} (or use `stalk up -A ...`)", EXIT_USAGE)
    config = build_config({**params, "app": DEMO_APP})
    if ui:  # the stack as its own process (or the one running on the data dir): it sends the load
        from stalk.panel.runtime import DemoLoad

        run_ui(config, DemoLoad(per_second, duration, seed), panel_source(config, {**params, "app": DEMO_APP}))
        return
    stack, broker, done = start_headless(config)
    load = None
    try:
        click.echo(f"stalk: {broker.mode} broker at {broker.display_url}; "
                   f"{', '.join(p.name for p in stack.processes())}")
        load = LoadGenerator(stack.app, per_second, duration=duration, seed=seed).start()
        click.echo(f"stalk: demo load at {per_second:g} tasks/s; Ctrl-C stops it")
        _report_until(done, load, duration)
        load.stop()
        _report(load)
    finally:
        if load is not None:
            load.stop()
        click.echo("stalk: stopping...")
        stack.stop()


def _report_until(done: threading.Event, load: Any, duration: float | None) -> None:
    """A progress line every few seconds until Ctrl-C or the end of --duration."""
    end = None if duration is None else time.monotonic() + duration
    while True:
        left = REPORT_EVERY if end is None else end - time.monotonic()
        if left <= 0 or done.wait(min(REPORT_EVERY, left)):
            return
        if end is None or time.monotonic() < end:
            _report(load)


def _report(load: Any) -> None:
    snap = load.snapshot()
    line = f"stalk: demo: {snap['submitted']} submitted in {snap['elapsed']:.0f} s"
    if snap["errors"]:
        line += f", {snap['errors']} not sent (last: {snap['last_error']})"
    click.echo(line)
