"""The `stalk` click group and what every command shares: stack flags, config, one-line errors.

Headless commands import only `stalk.embedded`; the UI is loaded on demand. The commands live in the
modules beside this one, which import it (never the package): stalk.panel.cli imports them all.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from stalk.embedded import (
    BrokerError,
    BrokerInfo,
    ConfigError,
    FileSink,
    OutputRoute,
    RunningStack,
    Stack,
    StackConfig,
    StackLockedError,
    load_config,
    locate_stack,
    missing_app,
    printable,
    route_output,
)
from stalk.embedded.broker import url_problem
from stalk.embedded.control import BadInput, check_seconds

EXIT_USAGE = 2


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"stalk: error: {printable(message)}", err=True)  # it may quote a task's, a worker's text
    sys.exit(code)


# -- bad input: one line, exit 2 (the checks are the stack's: stalk.embedded.control) ---------------

T = TypeVar("T")


def checked(check: Callable[[], T]) -> T:
    """A value checked before anything connects or is sent: BadInput is one line and exit 2."""
    try:
        return check()
    except BadInput as exc:
        fail(str(exc), EXIT_USAGE)


class Seconds(click.ParamType):
    """A finite number of seconds above 0 (--timeout): nan, inf, 0 and negatives are refused."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            return check_seconds("", value, allow_zero=False)
        except BadInput as exc:
            self.fail(str(exc).removeprefix(": "), param, ctx)


class Given(click.ParamType):
    """Text that is not empty: an empty --data-dir would be the current directory, an empty --broker-url
    no broker at all, an empty --name every task."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must not be empty", param, ctx)
        return value


class GivenPath(click.Path):
    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must not be empty", param, ctx)
        return super().convert(value, param, ctx)


SECONDS = Seconds()
GIVEN = Given()


def _one_line(exc: click.ClickException) -> click.ClickException:
    """Click's own errors (a bad option value, a missing argument, an unknown command) shown as Stalk's
    are: one line, `stalk: error: ...`, with where to read more; click keeps the exit code (2: usage)."""
    ctx = getattr(exc, "ctx", None)
    text = " ".join(exc.format_message().split())
    hint = f" (see {ctx.command_path} --help)" if isinstance(exc, click.UsageError) and ctx is not None else ""
    setattr(exc, "show", lambda file=None: click.echo(f"stalk: error: {text}{hint}", err=True))  # noqa: B010
    return exc


class StalkGroup(click.Group):
    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            raise _one_line(exc) from exc.__cause__

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise _one_line(exc) from exc.__cause__


# -- Celery's own output: to a log file, not into a command's output (embedded/celery_output.py) -----

CHILD_COMMANDS = ("worker", "beat")  # Celery itself: its output is the child's log, which Stalk reads
COMMAND_LOG = "commands.log"  # in the data dir's logs/
_command_log: FileSink | None = None


def route_celery_output(ctx: click.Context) -> None:
    """Until the command ends, what Celery, kombu and redis-py warn or log goes to the data dir's
    logs/commands.log; the command then says in one line how many lines went there."""
    global _command_log
    sink = _command_log = FileSink()
    route = route_output(sink)
    ctx.call_on_close(lambda: _close_command_log(route, sink))


def _log_under(config: StackConfig) -> StackConfig:
    if _command_log is not None:
        _command_log.open(config.paths.logs / COMMAND_LOG)
    return config


def _close_command_log(route: OutputRoute, sink: FileSink) -> None:
    route.restore()
    fallback = None
    if sink.path is None and route.count:
        with contextlib.suppress(ConfigError):
            fallback = load_config({}).paths.logs / COMMAND_LOG
    sink.close(fallback)
    if route.count:
        where = f"see {sink.path}" if sink.error is None else f"not saved: {sink.error}"
        click.echo(f"stalk: {route.count} warning{'s' if route.count != 1 else ''} from Celery: {where}", err=True)


def stack_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by every command that builds a StackConfig."""
    options = [
        click.option("-A", "--app", "app", type=GIVEN,
                     help="Celery app, package.module:app (default: the demo app)."),
        click.option("--broker", "mode", type=click.Choice(["auto", "redis", "embedded", "eager", "external"]),
                     help="Broker mode (auto: redis-server if installed, else embedded)."),
        click.option("--broker-url", type=GIVEN,
                     help="External broker URL (redis:// or amqp://); implies external mode."),
        click.option("--result-backend", type=GIVEN, help="External result backend URL."),
        click.option("--port", type=int, help="Port for Stalk's own broker (default: any free port)."),
        click.option("--appendfsync", type=click.Choice(["always", "everysec", "no"]),
                     help="redis-server AOF fsync policy."),
        click.option("--redis-server", "redis_server", type=GIVEN, help="Path of the redis-server binary."),
        click.option("--data-dir", type=GivenPath(path_type=Path), help="Where Stalk keeps data, logs and state."),
        click.option("--config", "config_file", type=GivenPath(path_type=Path), help="TOML config file."),
        click.option("--beat/--no-beat", default=None, help="Run celery beat (default: on)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def api_port_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`stalk up` and `stalk`: the API on loopback TCP too (the Unix socket is always there)."""
    fn = click.option("--basic-auth", metavar="USER:PASS[,USER:PASS]",
                      help="Credentials the Flower-compatible API (port 5555) requires, as Flower's "
                           "--basic-auth (or STALK_FLOWER_BASIC_AUTH).")(fn)
    return click.option("--api-port", type=click.IntRange(0, 65535),
                        help="Serve the stack's API on 127.0.0.1:PORT too (0: any free port).")(fn)


def build_config(params: dict[str, Any]) -> StackConfig:
    flags: dict[str, Any] = {}
    if params.get("api_port") is not None:
        flags["api"] = {"port": params["api_port"]}
    if params.get("basic_auth") is not None:
        flags["flower"] = {"basic_auth": params["basic_auth"]}
    broker = {k: params.get(k) for k in ("mode", "result_backend", "port", "appendfsync", "redis_server")}
    broker["url"] = params.get("broker_url")
    broker = {k: v for k, v in broker.items() if v is not None}
    if broker:
        flags["broker"] = broker
    for key in ("app", "beat"):
        if params.get(key) is not None:
            flags[key] = params[key]
    if params.get("data_dir") is not None:
        flags["data_dir"] = str(params["data_dir"])
    try:
        config = load_config(flags, params.get("config_file"))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    for url in (config.broker.url, config.broker.result_backend):
        problem = url and url_problem(url)
        if problem:
            fail(problem, EXIT_USAGE)
    return _log_under(config)


def locate(config: StackConfig) -> tuple[StackConfig, RunningStack | None]:
    """For a command about a running stack: an app (-A, STALK_APP, stalk.toml) that does not exist is one
    line (exit 2); with neither an app nor a data dir, the running stack on a default data dir, if one
    (embedded/running.py: several are one line listing them, exit 2)."""
    problem = missing_app(config.app, config.app_dir)
    if problem:
        fail(problem, EXIT_USAGE)
    try:
        found = locate_stack(config)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    _log_under(found[0])
    return found


def stack_config(params: dict[str, Any]) -> StackConfig:
    """build_config for a command that reads a stack's data dir (status, env, tasks, quota, revoked):
    pointed at the running stack it means (see `locate`)."""
    return locate(build_config(params))[0]


def open_stack(config: StackConfig) -> Stack:
    try:
        return Stack(config)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


@click.group(cls=StalkGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@api_port_option
@click.pass_context
def cli(ctx: click.Context, **params: Any) -> None:
    """Stalk: the whole Celery stack in one terminal. With no command, the panel on the stack running on the
    data dir, or on a stack it starts as a process of its own (it stops with the panel unless you leave
    it running when you quit)."""
    ctx.obj = params
    if ctx.invoked_subcommand not in (None, *CHILD_COMMANDS):  # the panel routes it to its Logs screen
        route_celery_output(ctx)
    if ctx.invoked_subcommand is None:
        config = build_config(params)
        run_ui(config, source=panel_source(config, params))


def merged(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Group-level flags overlaid by the subcommand's own."""
    base = dict(ctx.obj or {})
    base.update({k: v for k, v in params.items() if v is not None})
    return base


def run_ui(config: StackConfig, load: Any = None, source: Any = None) -> None:
    """The panel on `config`'s stack; `load`: a panel.runtime.DemoLoad (`stalk demo --ui`); `source`: a
    panel.runtime.RemoteSource (the stack as its own process), else the stack runs inside the panel."""
    from stalk.panel.app import run_panel

    run_panel(config, load, source)


#: `stalk up` flags a panel passes on to the stack process it starts (secrets go in its environment)
UP_FLAGS = {"app": "--app", "mode": "--broker", "port": "--port", "appendfsync": "--appendfsync",
            "redis_server": "--redis-server", "config_file": "--config", "api_port": "--api-port"}
UP_ENV = {"broker_url": "STALK_BROKER_URL", "result_backend": "STALK_RESULT_BACKEND",
          "basic_auth": "STALK_FLOWER_BASIC_AUTH"}


def up_command(config: StackConfig, params: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """`stalk up`'s arguments and environment for the same stack as `params` (the panel's own flags)."""
    args = ["--data-dir", str(config.paths.data_dir.absolute())]
    for key, flag in UP_FLAGS.items():
        if params.get(key) is not None:
            args += [flag, str(params[key])]
    if params.get("beat") is not None:
        args.append("--beat" if params["beat"] else "--no-beat")
    env = {name: str(params[key]) for key, name in UP_ENV.items() if params.get(key) is not None}
    return args, env


def panel_source(config: StackConfig, params: dict[str, Any]) -> Any:
    """`stalk`: attach to the stack running on the data dir, or start one as a process of its own."""
    from stalk.embedded.service import StackProcess
    from stalk.panel.runtime import RemoteSource

    args, env = up_command(config, params)
    return RemoteSource(config.paths.data_dir, launch=StackProcess(args, config.paths.data_dir, env))


def start_headless(config: StackConfig) -> tuple[Stack, BrokerInfo, threading.Event]:
    """Start a stack without the UI: the stack, its broker, and an event set by Ctrl-C, TERM or HUP (or
    when the panel that started this process goes away; POST /stack/stop sets `stack.stop_requested`)."""
    from stalk.embedded.service import watch_starter

    stack = open_stack(config)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    watch_starter(stack, done.set)  # started by a panel: stop when it goes, unless detached
    try:
        stack.start(wait=True)
    except (BrokerError, StackLockedError, ConfigError) as exc:
        fail(str(exc))
    assert stack.broker is not None  # start() sets it before it returns
    return stack, stack.broker, done
