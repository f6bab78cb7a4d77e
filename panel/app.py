"""The Textual app: modes over one Stack. Build it with `make_app` (tests do too); `run_panel` runs it."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App
from textual.notifications import SeverityLevel
from textual.reactive import var
from textual.timer import Timer
from textual.widget import AwaitMount
from textual.worker import Worker, WorkerState

from stalk.embedded import (
    FOREGROUND,
    BrokerInfo,
    ProcessInfo,
    Stack,
    StackConfig,
    Unfinished,
    printable,
    stop_consuming,
    unfinished,
)
from stalk.panel import gc_tuning
from stalk.panel.actions import bindings
from stalk.panel.alert_watch import ALERTS_EVERY, AlertsRead, AlertWatch
from stalk.panel.hooks_access import read_alerts
from stalk.panel.messages import (
    BrokerChanged,
    BrokerHealth,
    Notice,
    OpenTask,
    Phase,
    PhaseChanged,
    ProcessesChanged,
    QuitChecked,
    QuitNow,
    StackAttached,
    TasksChanged,
)
from stalk.panel.palette import ActionCommands
from stalk.panel.runtime import HEALTH_EVERY, DemoLoad, RemoteSource, StackRuntime
from stalk.panel.screens.help import HelpScreen
from stalk.panel.screens.quit import QuitScreen
from stalk.panel.screens_registry import MODE_SCREENS

Clock = Callable[[], float]
KEY_HOLD = 0.05  # s the stack's background threads step aside for a key at most (embedded.foreground)


class StalkApp(App):
    """State the screens read lives here as vars; only message handlers change it. Screens and widgets
    watch what they show: a change repaints them, not the whole screen (an App reactive refreshes the
    screen on every change: a full repaint per event batch, 10 a second under load)."""

    TITLE = "Stalk"
    CSS_PATH = "styles/app.tcss"
    MODES = MODE_SCREENS
    BINDINGS = bindings("app")
    COMMANDS = App.COMMANDS | {ActionCommands}

    phase: var[Phase] = var(Phase("idle"), always_update=True)
    processes: var[tuple[ProcessInfo, ...]] = var(tuple)
    broker: var[BrokerInfo | None] = var(None)
    broker_problem: var[str | None] = var(None)
    tasks_version: var[int] = var(0)  # bumped per event-store batch; task screens re-query

    def __init__(self, config: StackConfig, stack: Stack | None = None, clock: Clock = time.time,
                 start: bool = True, probe_broker: bool = True, load: DemoLoad | None = None,
                 source: RemoteSource | None = None) -> None:
        super().__init__()
        self.config = config
        self.clock = clock
        self.stack: Any = stack  # a Stack, or a RemoteStack (`source`: the stack as its own process)
        self.runtime = StackRuntime(self, config, stack, load, source)
        self.goodbye: str | None = None  # printed once the panel has left the terminal
        self._start = start
        self._probe = probe_broker
        self._stopping = False
        self._waiting_to_quit = False  # finishing the running tasks before quitting
        self._collector = gc_tuning.collector()
        self._switching_to_mounted = False
        self._collect_armed = False
        self._last_key: events.Key | None = None
        self._css_variables: tuple[object, dict[str, str]] | None = None  # (theme, its variables)
        self._alert_watch = AlertWatch()
        self._alerts_timer: Timer | None = None

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notice is plain text: they quote task names, exceptions and what the user typed (an eta
        of `[/]` made the toast's markup invalid and the panel died rendering it). Screens' notify
        always passes markup=True, so it is ignored here; no notice uses markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def get_css_variables(self) -> dict[str, str]:
        """Textual rebuilds the theme's whole colour system at every call (~1 ms), and screens ask at
        every table refresh (a key, a live re-query): the same answer until the theme changes."""
        theme, cached = self.current_theme, getattr(self, "_css_variables", None)  # None in App.__init__
        if cached is None or cached[0] is not theme:
            self._css_variables = cached = (theme, super().get_css_variables())
        self.theme_variables = cached[1]
        return cached[1]

    def delay_update(self, delay: float = 0.05) -> None:
        """Textual holds every paint for 50 ms on a mode switch, to mask the new screen's mounting.
        Stalk's mode screens stay mounted after their first visit: one frame is enough for the first
        (screen switches: ~55 -> ~15 ms from key to repaint), none for the others (there is nothing
        to mask: the screen is whole, its next frame shows it; ~22 -> ~6 ms)."""
        if not self._switching_to_mounted:
            super().delay_update(min(delay, 1 / 60))

    def switch_mode(self, mode: str) -> AwaitMount:
        self._switching_to_mounted = mode in self._screen_stacks  # Textual's own: the modes with a screen
        try:
            return super().switch_mode(mode)
        finally:
            self._switching_to_mounted = False

    def on_mount(self) -> None:
        self.switch_mode("dashboard")
        if self._start:
            self.start_stack()
        if self._collector is not None:
            self.set_interval(gc_tuning.QUIET, self._collect_when_quiet)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and event is not self._last_key:  # not a key bubbling back up
            self._last_key = event
            self._hold_foreground()
            if self._collector is not None:
                self._collector.saw_input()
                if not self._collect_armed:
                    self._collect_armed = True
                    self.set_timer(gc_tuning.AFTER_INPUT, self._collect_after_input)
        await super().on_event(event)

    def _hold_foreground(self) -> None:
        """The stack's background threads wait while this key is answered: until the screen has been
        refreshed twice (the key's own handlers run in the widgets' queues, a hop later), KEY_HOLD at most."""
        FOREGROUND.hold(KEY_HOLD)
        self.call_after_refresh(self.call_after_refresh, FOREGROUND.release)

    # -- full garbage collections, at times the user is not waiting (gc_tuning.Collector) --------

    def _collect_after_input(self) -> None:
        collector = self._collector
        assert collector is not None
        wait = gc_tuning.AFTER_INPUT - collector.quiet_for()
        if wait > 0:  # another key came since: after its answer
            self.set_timer(wait, self._collect_after_input)
            return
        self._collect_armed = False
        collector.collect_if_due(gc_tuning.AFTER_INPUT)

    def _collect_when_quiet(self) -> None:
        if self._collector is not None:
            self._collector.collect_if_due(gc_tuning.QUIET)

    # -- stack life cycle -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="stack", exit_on_error=False)
    def start_stack(self) -> None:
        self.runtime.start()

    @on(StackAttached)
    def _attached(self, message: StackAttached) -> None:
        self.stack = message.stack

    @on(PhaseChanged)
    def _phase(self, message: PhaseChanged) -> None:
        self.phase = message.phase
        if message.phase.kind == "failed":
            self.notify(message.phase.text, title="Stack", severity="error", timeout=30)
        if message.phase.kind == "ready":
            gc_tuning.settle()
            if self._probe:
                self.set_timer(HEALTH_EVERY, self.probe_broker)
            if self._alerts_timer is None:
                self.check_alerts()  # what fires from now on is news
                self._alerts_timer = self.set_interval(ALERTS_EVERY, self.check_alerts)

    @on(ProcessesChanged)
    def _processes(self, message: ProcessesChanged) -> None:
        self.processes = message.snapshot

    @on(TasksChanged)
    def _tasks(self, _message: TasksChanged) -> None:
        self.tasks_version += 1

    @on(OpenTask)
    def _open_task(self, message: OpenTask) -> None:
        from stalk.panel.screens.detail import DetailScreen

        if self.current_mode != "tasks":
            self.switch_mode("tasks")
        if isinstance(self.screen, DetailScreen):  # one detail at a time: esc is back on Tasks
            self.switch_screen(DetailScreen(message.task_id))
        else:
            self.push_screen(DetailScreen(message.task_id))

    async def action_switch_mode(self, mode: str) -> None:
        """The key of the mode a Task detail was opened in goes back to that mode's screen (7 on a detail
        opened by a submit: the form), as esc does; any other mode key keeps the detail where it is."""
        from stalk.panel.screens.detail import DetailScreen

        if mode == self.current_mode and isinstance(self.screen, DetailScreen):
            self.screen.dismiss()
            return
        self.switch_mode(mode)

    @on(BrokerChanged)
    def _broker(self, message: BrokerChanged) -> None:
        self.broker = message.info

    @work(thread=True, exclusive=True, group="health", exit_on_error=False)
    def probe_broker(self) -> None:
        self.runtime.probe_broker()

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def check_alerts(self) -> None:
        """A toast when an alert rule begins firing, whatever screen is shown."""
        try:
            rules = list(read_alerts(self.stack)["rules"])
        except Exception:  # the Hooks screen says what failed
            return
        self.post_message(AlertsRead(rules))

    @on(AlertsRead)
    def _alerts(self, message: AlertsRead) -> None:
        for rule in self._alert_watch.newly_firing(message.rules):
            text = str(rule.get("message") or rule.get("description") or "firing")
            self.notify(printable(f"{rule.get('name')}: {text}"), title="Alert firing", severity="error",
                        timeout=30)

    @on(BrokerHealth)
    def _health(self, message: BrokerHealth) -> None:
        if self.broker_problem and message.problem is None:
            self.notify("broker reachable again", title="Broker")
        self.broker_problem = message.problem
        if not self._stopping:
            self.set_timer(HEALTH_EVERY, self.probe_broker)

    # -- actions and errors ---------------------------------------------------------------------

    @work(thread=True, group="actions", exit_on_error=False)
    def run_stack_action(self, label: str, fn: Callable[[], Any], done: str | None = None) -> None:
        """Run a blocking stack call off the UI thread; its outcome becomes a notice."""
        try:
            fn()
        except Exception as exc:  # stack errors are notices, never crashes
            self.post_message(Notice(f"{label}: {exc}", "error", 10))
            return
        if done:
            self.post_message(Notice(done))

    @on(Notice)
    def _notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity, timeout=message.timeout)  # type: ignore[arg-type]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self.notify(f"{event.worker.name}: {type(error).__name__}: {error}", severity="error", timeout=10)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(getattr(self.screen, "SCOPE", None)))

    async def action_quit(self) -> None:
        """Quit; a stack this panel started asks first while tasks run or wait (what happens to them
        depends on the broker), and can finish the running ones first. ctrl+q again quits at once. A stack
        process this panel started (`stalk`) always asks: stop it, or leave it running (detached); a stack
        it attached to (`stalk attach`) is left as it is."""
        if self._stopping:
            if self.runtime.launched is not None:  # stopping the stack process: it stops without us too
                self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            self.screen.dismiss("now")
            return
        stack = self.stack
        if self.runtime.launched is not None and stack is not None and not self._waiting_to_quit:
            self._count_unfinished(stack)  # a stack this panel started: stop it, or leave it running
            return
        if self._waiting_to_quit or not self.runtime.owned or stack is None or stack.mode == "eager":
            self._quit_now()
            return
        self._count_unfinished(stack)

    @work(thread=True, group="quit-check", exclusive=True, exit_on_error=False)
    def _count_unfinished(self, stack: Any) -> None:
        self.post_message(QuitChecked(_unfinished(stack)))

    @on(QuitChecked)
    def _quit_checked(self, message: QuitChecked) -> None:
        if self._stopping or isinstance(self.screen, QuitScreen):
            return
        launched = self.runtime.launched is not None
        if not message.work.any and not launched:
            self._quit_now()
            return
        self.push_screen(QuitScreen(message.work, self.config.supervisor.grace_period, can_leave=launched),
                         self._quit_answered)

    def _quit_answered(self, answer: str | None) -> None:
        if answer == "now":
            self._quit_now()
        elif answer == "leave" and self.stack is not None:
            self._leave_running(self.stack)
        elif answer == "wait" and self.stack is not None:
            self._waiting_to_quit = True
            self._wait_then_quit(self.stack)

    @work(thread=True, group="quit-wait", exit_on_error=False)
    def _wait_then_quit(self, stack: Any) -> None:
        """Stalk's workers take nothing new; quit once nothing runs (ctrl+q cuts it short)."""
        try:
            if getattr(stack, "remote", False):
                stack.stop_consuming()
            else:
                stop_consuming(stack)
            while not self._stopping:
                running = _unfinished(stack).running
                if not running:
                    break
                self.post_message(PhaseChanged(Phase("stopping", f"waiting for {running} running task(s) "
                                                                 "to finish; ctrl+q quits now")))
                time.sleep(0.5)
        finally:
            self.post_message(QuitNow())

    @on(QuitNow)
    def _quit_when_done(self) -> None:
        self._quit_now()

    def _quit_now(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.runtime.owned and self.stack is not None:
            self.phase = Phase("stopping", "warm-stopping workers and beat, then the broker")
            self._stop_then_exit()
        elif self.runtime.launched is not None and self.stack is not None:
            self.phase = Phase("stopping", "stopping the stack: workers and beat warm-stop, then the broker; "
                                           "ctrl+q quits at once (the stack still stops)")
            self._stop_process_then_exit(self.stack)
        else:
            if getattr(self.stack, "remote", False):
                where = _data_dir_flag(self.stack.paths.data_dir)
                self.goodbye = (f"stalk: the stack on {self.stack.paths.data_dir} keeps running "
                                f"(`stalk down{where}` stops it)")
            self.runtime.stop()
            self.exit()

    @work(thread=True, group="stop", exit_on_error=False)
    def _stop_then_exit(self) -> None:
        try:
            self.runtime.stop()
        finally:
            self.call_from_thread(self.exit)

    @work(thread=True, group="stop", exit_on_error=False)
    def _stop_process_then_exit(self, stack: Any) -> None:
        """POST /stack/stop to the stack process this panel started, and wait until it has ended."""
        launched = self.runtime.launched
        try:
            stack.stop_stack()
        except Exception:  # an API that no longer answers: our leaving closes the pipe, it stops itself
            pass
        finally:
            if launched is not None and launched.wait(self.config.supervisor.grace_period + 30) is None:
                self.goodbye = f"stalk: the stack (pid {launched.pid}) is still stopping; see {launched.log}"
            self.call_from_thread(self.exit)

    @work(thread=True, group="stop", exit_on_error=False)
    def _leave_running(self, stack: Any) -> None:
        """Detach the stack this panel started (POST /stack/detach): it outlives the panel."""
        try:
            stack.detach()
        except Exception as exc:
            self.post_message(Notice(f"leave running: {exc}", "error", 10))
            return
        where = _data_dir_flag(stack.paths.data_dir)
        self.goodbye = (f"stalk: the stack keeps running on {stack.paths.data_dir} (pid {stack.pid}); "
                        f"`stalk attach{where}` to come back, `stalk down{where}` to stop it")
        self._stopping = True
        self.call_from_thread(self.exit)

    def on_unmount(self) -> None:
        self.runtime.stop()


def _data_dir_flag(data_dir: Path) -> str:
    """The flag that names this stack in a command to copy (other stacks may run on other data dirs)."""
    return f" --data-dir {shlex.quote(str(data_dir))}"


def make_app(config: StackConfig, stack: Stack | None = None, clock: Clock = time.time,
             start: bool = True, probe_broker: bool = True, load: DemoLoad | None = None,
             source: RemoteSource | None = None) -> StalkApp:
    """The app as `stalk` runs it. Pass a started `stack` to reuse it (it is then not stopped on exit);
    `load`: the demo's task mix once the stack is ready (`stalk demo --ui`); `source`: attach to the stack
    as its own process (started by this panel when none runs) instead of running it in this process."""
    return StalkApp(config, stack=stack, clock=clock, start=start, probe_broker=probe_broker, load=load,
                    source=source)


def run_panel(config: StackConfig, load: DemoLoad | None = None, source: RemoteSource | None = None) -> None:
    gc_tuning.tune()
    app = make_app(config, load=load, source=source)
    app.run()
    if app.goodbye:
        print(app.goodbye)


def _unfinished(stack: Any) -> Any:
    """What stopping would interrupt: counted by the stack process for a RemoteStack."""
    if not getattr(stack, "remote", False):
        return unfinished(stack)
    try:
        return stack.unfinished()
    except Exception:  # a stack that does not answer: nothing known to be in flight
        return Unfinished(0, 0, 0, stack.mode)
