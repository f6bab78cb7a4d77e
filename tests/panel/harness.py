"""Deterministic inputs for panel tests: an eager stack, a frozen clock, fixed process snapshots.

The panel under test is what `stalk` runs: a client of the stack's API (a RemoteStack on the test stack's
own API socket), never the Stack object itself. Fixed layers (a stand-in event store, control, data dir)
are put on the real Stack, which its API serves (`serving`).

Volatile values (pids, uptime, CPU, RSS) come from fixed ProcessInfo snapshots fed through the same
ProcessesChanged message the live stack listener posts; the product code path is unchanged.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from stalk.embedded import BrokerInfo, LogLine, ProcessInfo, ProcState, ProcStats
from stalk.embedded.service import RemoteStack, StackClient
from stalk.embedded.status_file import read_status
from stalk.panel.app import make_app
from tests.conftest import wait_until

FROZEN = 1_780_000_000.0  # a fixed "now" for every panel test


def frozen_clock() -> float:
    return FROZEN


def proc(name: str, role: str, state: ProcState, pid: int | None, queues: tuple[str, ...] = (),
         restarts: int = 0, up_for: float = 3725.0, cpu: float = 1.5, rss: int = 104_857_600,
         last_error: str | None = None) -> ProcessInfo:
    return ProcessInfo(name=name, role=role, state=state, pid=pid, queues=queues, restarts=restarts,
                       started_at=FROZEN - up_for if pid else None, exit_code=None, last_error=last_error,
                       stats=ProcStats(cpu, rss, 2) if pid else ProcStats(), hostname=None)


BUSY = [
    proc("broker", "broker", ProcState.RUNNING, 4101, cpu=0.8, rss=12_582_912),
    proc("worker:default", "worker", ProcState.READY, 4102, ("default",), cpu=12.5),
    proc("worker:slow", "worker", ProcState.READY, 4103, ("slow", "media"), cpu=48.0, rss=209_715_200),
    proc("worker:io", "worker", ProcState.BACKING_OFF, None, ("io",), restarts=3,
         last_error="exited with code 1 after 0.4 s"),
    proc("beat", "beat", ProcState.RUNNING, 4105, cpu=0.2, rss=57_671_680),
]

STARTING = [
    proc("broker", "broker", ProcState.RUNNING, 4101, up_for=2.0),
    proc("worker:default", "worker", ProcState.READY, 4102, ("default",), up_for=1.0),
    proc("worker:slow", "worker", ProcState.STARTING, 4103, ("slow",), up_for=1.0),
    proc("worker:io", "worker", ProcState.STARTING, 4104, ("io",), up_for=1.0),
    proc("beat", "beat", ProcState.STARTING, 4105, up_for=1.0),
]

REDIS = BrokerInfo("redis", "redis://:s3cret@127.0.0.1:6390/0", "redis://:s3cret@127.0.0.1:6390/1",
                   "redis, AOF everysec: at most 1 s of submissions at risk", port=6390, pid=4101)


def log_lines(process: str) -> list[LogLine]:
    texts = [
        "[stalk] started worker:default (pid 4102)",
        "[2026-05-28 20:26:40,001: INFO/MainProcess] Connected to redis://:**@127.0.0.1:6390/0",
        "[2026-05-28 20:26:40,120: INFO/MainProcess] celery@default ready.",
        "[2026-05-28 20:26:41,002: INFO/MainProcess] Task demo.add[0001] received",
        "[2026-05-28 20:26:41,010: INFO/ForkPoolWorker-1] Task demo.add[0001] succeeded in 0.004s: 5",
        "[2026-05-28 20:26:42,500: WARNING/ForkPoolWorker-1] Task demo.flaky[0002] retry: in 2s",
        "[2026-05-28 20:26:44,700: ERROR/ForkPoolWorker-1] Task demo.flaky[0002] raised ValueError('boom')",
        "[2026-05-28 20:26:45,000: DEBUG/MainProcess] heartbeat sent",
    ]
    return [LogLine(i + 1, FROZEN - 60 + i, process, t) for i, t in enumerate(texts)]


# -- the panel as a client of the stack's API -----------------------------------------------------

_REMOTES: list[RemoteStack] = []  # the views `remote_view` opened, closed after each test (conftest)
_UNDO: list[Callable[[], None]] = []  # what `serving` put on a stack, undone after each test


def remote_view(stack: Any) -> RemoteStack:
    """A RemoteStack on `stack`'s API (a started Stack serves it on its data dir's socket), as `stalk`
    attaches with; closed after the test (conftest `closing_remotes`)."""
    paths = stack.config.paths  # its own (`serving` may show the API another data dir's files)
    wait_until(lambda: read_status(paths.state), 10, 0.02)  # the API's address, for clients
    remote = RemoteStack(StackClient.on_data_dir(paths.data_dir))
    _REMOTES.append(remote)
    return remote


def close_remotes() -> None:
    while _REMOTES:
        _REMOTES.pop().close()


def serving(stack: Any, **layers: Any) -> Any:
    """Put fixed layers (events, control, paths, mode: None for none) on the real `stack` for this test,
    undone after it (conftest `closing_remotes`); its API serves them to the panel. A stand-in store's
    changes reach the API's change stream as the live store's do."""
    for name, value in layers.items():
        if name in vars(stack):
            _UNDO.append(functools.partial(setattr, stack, name, vars(stack)[name]))
        else:  # a method (processes, restart_process): the class's again
            _UNDO.append(functools.partial(delattr, stack, name))
        setattr(stack, name, value)
    api, events = getattr(stack, "api", None), layers.get("events")
    if events is not None and api is not None:
        _UNDO.append(events.subscribe(api._task_changes))
    return stack


def undo_serving() -> None:
    while _UNDO:
        _UNDO.pop()()


def app_for(stack: Any, clock: Callable[[], float] = frozen_clock):
    """The panel on `stack` as users run it: over the stack's API."""
    return make_app(stack.config, stack=remote_view(stack), clock=clock, probe_broker=False)


def in_process_app(stack: Any, clock: Callable[[], float] = frozen_clock):
    """The panel holding the Stack object itself (`stalk` never runs it so any more): only for what only an
    in-process panel has (its own process's output routed to the stack's log; a Stack without an event
    store or a Control object, where a panel on the API has views that get 503 until the stack has them)."""
    return make_app(stack.config, stack=stack, clock=clock, probe_broker=False)


def launching_app(config: Any, *up_flags: str, **kwargs: Any):
    """The panel as `stalk` runs it where no stack runs yet: it starts `stalk up <up_flags>` on `config`'s
    data dir as a process of its own and attaches to its API (quit it with `quit_launched`)."""
    from stalk.embedded.service import StackProcess
    from stalk.panel.runtime import RemoteSource

    data_dir = config.paths.data_dir
    launch = StackProcess([*up_flags, "--data-dir", str(data_dir)], data_dir,
                          env={"STALK_CONFIG": "", "STALK_FLOWER_PORT": "0"})
    return make_app(config, source=RemoteSource(data_dir, launch=launch), probe_broker=False, **kwargs)


async def quit_launched(pilot, timeout: float = 60.0) -> None:
    """ctrl+q, and "quit" in the dialog: the stack process the panel started stops, then the panel."""
    from stalk.panel.screens.quit import QuitScreen

    launched = pilot.app.runtime.launched
    await pilot.press("ctrl+q")
    await until(pilot, lambda: isinstance(pilot.app.screen, QuitScreen), "the quit dialog")
    await pilot.press("q")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pilot.app.is_running and loop.time() < deadline:
        await pilot.pause(0.05)
    assert not pilot.app.is_running, "the panel did not quit"
    assert launched is None or launched.wait(timeout) == 0


async def app_quiet(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
    """Stands in for Textual's `wait_for_idle` in panel tests (the wait inside `pilot.press` and
    `pilot.pause()`): instead of waiting for the process's CPU to go quiet (at least 20 ms a call, and the
    repaint that follows a key keeps it busy for two or three of those: 40-60 ms a key), wait for the app
    to have nothing left to do: its workers finished, every message queued on the app and its screen's
    widgets handled (the pumps run a callback behind them), then no new message, no pending layout,
    repaint, callback, animation or resize; twice in a row. At most `max_sleep` seconds, as Textual's."""
    from textual._context import active_app
    from textual._wait import wait_for_idle
    from textual.pilot import Pilot

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_sleep
    try:
        app = active_app.get()
    except LookupError:  # not inside an app: Textual's own wait
        await wait_for_idle(min_sleep, max_sleep)
        return
    pilot = Pilot(app)
    quiet = 0
    while quiet < 2 and loop.time() < deadline:
        try:
            busy = await workers_finished(app, max(deadline - loop.time(), 0.01))
            if not await pilot._wait_for_screen(timeout=max(deadline - loop.time(), 0.01)):
                return  # the app raised: run_test reports it
            screen = app.screen
            pumps = [app, *screen.walk_children(with_self=True)]
        except Exception:  # no screen (yet, or any more), or the time is up
            return
        if busy or any(pump._message_queue.qsize() or pump._next_callbacks for pump in pumps):
            quiet = 0
        elif (screen._layout_required or screen._scroll_required or screen._repaint_required
              or screen._dirty_widgets or screen._recompose_required or screen._callbacks):
            quiet = 0
            screen._on_timer_update()  # what the 1/60 s update timer would do next
        elif app.animator._animations or app.animator._scheduled or app._resize_timer is not None:
            quiet = 0  # an animation, or a resize the app applies after 1/120 s
            await asyncio.sleep(0.005)
        else:
            quiet += 1
            await asyncio.sleep(0)
    remaining = min_sleep - (max_sleep - (deadline - loop.time()))
    if remaining > 0:
        await asyncio.sleep(remaining)


async def settle(pilot) -> None:
    """Wait for the stack to attach, then stop live process snapshots (tests feed fixed ones)."""
    await pilot.app.workers.wait_for_complete()
    pilot.app.runtime.detach()
    await pilot.pause()


async def workers_finished(app: Any, timeout: float | None = None) -> int:
    """Every started worker of the app finished (cancelled or failed counts: an exclusive worker replaced
    by a newer one raises WorkerCancelled from `wait_for_complete`), or `timeout` seconds passed.
    How many there were to wait for."""
    running = [w.wait() for w in app.workers if w.state.name != "PENDING" and not w.is_finished]
    if running:
        try:
            await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), timeout)
        except TimeoutError:  # a worker still running: the caller's check says whether that matters
            pass
    return len(running)


async def until(pilot, check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """The first truthy `check()`, asked each time the app's workers have finished and the messages they
    posted are handled; AssertionError naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await workers_finished(pilot.app, max(deadline - loop.time(), 0.01))
        await pilot.pause()
        value = check()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def palette_hits(app: Any) -> int:
    """How many commands the open palette lists for what was typed (0 while it is still searching)."""
    from textual.command import CommandList, CommandPalette

    screen = app.screen
    return screen.query_one(CommandList).option_count if isinstance(screen, CommandPalette) else 0


def feeding(*messages: Any, press: tuple[str, ...] = ()):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for message in messages:
            pilot.app.post_message(message)
        await pilot.pause()
        for key in press:
            await pilot.press(key)
        await pilot.pause()

    return run_before


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async Pilot test on a fresh event loop (no async pytest plugin needed)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run
