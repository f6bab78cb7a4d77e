"""Pilot flows of the shell: confirmation, errors as notices, modes, help, and a real stack's restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal

import pytest
from textual.app import App
from textual.markup import to_content
from textual.widget import Widget
from textual.widgets import Label
from textual.widgets.data_table import CellDoesNotExist

from stalk.embedded import ProcState, Stack
from stalk.panel.messages import BrokerChanged, LogsFetched, ProcessesChanged
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.screens.help import HelpScreen
from stalk.panel.screens.tasks import TasksScreen
from stalk.panel.task_rows import TASK_STATES
from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.process_table import ProcessTable
from tests.conftest import make_config

from .conftest import SIZE
from .harness import (
    BUSY,
    REDIS,
    app_for,
    close_remotes,
    launching_app,
    log_lines,
    palette_hits,
    quit_launched,
    settle,
    sync,
)


@sync
async def test_stop_asks_first_and_no_does_nothing(eager_stack):
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(ProcessesChanged(BUSY))
        await pilot.pause()
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert not app._notifications  # nothing was attempted


@sync
async def test_stack_errors_become_notices(eager_stack):
    """Stopping a process the stack does not have: a notice, the app keeps running."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(ProcessesChanged(BUSY))
        await pilot.pause()
        await pilot.press("s", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        texts = [n.message for n in app._notifications]
        assert any("stop broker" in t and "no process named" in t for t in texts), texts
        assert app.is_running


@sync
async def test_number_keys_switch_modes_and_help_lists_bindings(eager_stack):
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        assert app.current_mode == "logs"
        await pilot.press("1")
        assert app.current_mode == "dashboard"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_mode_bar_click_switches(eager_stack):
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(BrokerChanged(REDIS))
        await pilot.click("ModeBar", offset=(68, 0))  # "6 Logs"
        await pilot.pause()
        assert app.current_mode == "logs"


@sync
async def test_a_narrow_key_bar_keeps_help_and_its_clicks_land(eager_stack):
    """At 80 columns the Workers keys do not all fit: the last ones give way, `? Help` stays."""
    app = app_for(eager_stack)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        plain = to_content(bar.layout_for(app.screen, bar.size.width)[0]).plain
        assert len(plain) <= bar.size.width and plain.endswith("? Help"), plain
        assert plain.startswith("+ Grow pool - Shrink pool") and "Palette" not in plain
        wide = to_content(bar.layout_for(app.screen, 200)[0]).plain
        assert "p Purge queue  ^q Quit  ? Help  : Palette" in wide
        help_at = plain.index("? Help")
        await pilot.click(KeyBar, offset=(1 + help_at, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


@sync
async def test_key_bar_follows_focus_and_clicks_run_the_key(eager_stack):
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        assert "Search" in bar.layout_for(app.screen)[0]
        await pilot.press("slash")  # the search box has focus: the Tasks keys still show
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.click(KeyBar, offset=(1, 0))  # "/ Search"
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "task-search"


@sync
async def test_a_key_bar_refresh_queued_before_its_screen_closed_is_dropped(eager_stack):
    """CI saw NoScreen: a bindings change queued the bar's refresh, escape closed the screen first."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        bar = help_screen.query_one(KeyBar)
        await pilot.press("escape")
        await pilot.pause()
        assert not bar.is_attached
        bar._show_keys()  # what the queued callback runs
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_the_palette_reaches_another_screens_action(eager_stack):
    """`:` then 'state filter' on the Dashboard: the Tasks screen's state filter, run there."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"state filter")
        await wait_until(pilot, lambda: palette_hits(app), 10)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.current_mode == "tasks", 10)
        await pilot.pause()
        assert isinstance(app.screen, TasksScreen) and app.screen.filter.state == TASK_STATES[0]


@sync
async def test_focus_changes_leave_no_dead_widgets(eager_stack):
    """Textual's Footer rebuilt a widget per key on each focus change and kept the old ones alive."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")

        async def widgets_after(changes: int) -> int:
            for _ in range(changes):
                await pilot.press("slash", "enter")
            await pilot.pause()
            gc.collect()
            return sum(1 for o in gc.get_objects() if isinstance(o, Widget))

        before = await widgets_after(2)
        assert await widgets_after(30) <= before


async def wait_until(pilot, predicate, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.05)


def table_cell(app, row: str, column: str) -> str | None:
    """The cell's text, or None until the Dashboard's first poll has drawn the row."""
    table = app.screen.query_one(ProcessTable)
    try:
        return str(table.get_cell(row, column))
    except CellDoesNotExist:
        return None


@pytest.mark.procs
@sync
async def test_killed_worker_shows_restart_then_ready(tmp_path):
    """A redis stack the panel started as its own process: a worker killed (SIGKILL, as a crash), the
    Dashboard shows the restart and ready."""
    config = make_config(tmp_path / "data", broker={"mode": "redis"}, beat=False)
    app = launching_app(config, "--broker", "redis", "--no-beat")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.phase.kind == "ready")
        await wait_until(pilot, lambda: table_cell(app, "worker:default", "state") == ProcState.READY)
        pid = app.stack.process("worker:default").pid
        assert pid and app.runtime.launched is not None
        os.kill(pid, signal.SIGKILL)
        await wait_until(pilot, lambda: table_cell(app, "worker:default", "restarts") == "1"
                         and table_cell(app, "worker:default", "state") == ProcState.READY)
        await quit_launched(pilot)


@sync
async def test_a_mode_screen_comes_back_in_the_theme_chosen_while_it_was_away(eager_stack):
    """Mode screens skip Textual's restyle on resume (StalkScreen._on_screen_resume); a theme chosen
    while one was suspended still reaches it, and a class set on it meanwhile still shows."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        tasks = app.screen
        table = tasks.query_one("#task-table")
        await pilot.press("1")
        before = table.styles.background
        app.theme = "nord" if app.theme != "nord" else "gruvbox"
        await pilot.pause()
        table.add_class("-probe")  # a class set while suspended restyles at once
        await pilot.press("2")
        for _ in range(100):  # the restyle runs after the resume's refresh, and the rows' redraw after a
            await pilot.pause(0.05)  # re-query in a thread: under load, a few frames later
            if table.styles.background != before and table._variables == app.get_css_variables():
                break
        assert app.screen is tasks
        assert table.styles.background != before  # the new theme's colours
        assert table.has_class("-probe")
        assert app.get_css_variables() is app.get_css_variables()  # kept, not rebuilt per table refresh
        assert app.get_css_variables() == App.get_css_variables(app)  # the new theme's, as Textual makes them
        assert table._variables == app.get_css_variables()  # the table's rows are drawn with them


@sync
async def test_logs_filter_with_brackets_is_shown_as_typed(eager_stack):
    """Log lines start with `[stalk]` or `[2026-...`: a filter typed with its bracket must read back whole
    in the status line (unescaped it was markup that swallowed the rest of the line)."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(ProcessesChanged(BUSY))
        await pilot.press("6")
        await pilot.pause()
        app.screen.post_message(LogsFetched({"broker": log_lines("broker")}))
        await pilot.pause()
        await pilot.press("slash", *"[stalk]")
        await pilot.pause()
        status = str(app.screen.query_one("#log-status", Label).render())
        assert "filter: [stalk]" in status, status
        assert "follow on" in status


@sync
async def test_broker_line_follows_a_restarted_broker_pid(eager_stack):
    """The broker's pid changes when the supervisor restarts it: the line showed the first one forever."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(BrokerChanged(REDIS))
        restarted = [dataclasses.replace(p, pid=4999, restarts=1) if p.role == "broker" else p for p in BUSY]
        app.post_message(ProcessesChanged(restarted))
        await pilot.pause()
        line = str(app.screen.query_one("#broker").render())
        assert "pid 4999" in line and "pid 4101" not in line, line


@sync
async def test_enter_on_a_process_opens_its_logs(eager_stack):
    """The process table's own enter (select the row) swallowed the Dashboard's: enter did nothing."""
    app = app_for(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(ProcessesChanged(BUSY))
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.current_mode == "logs"
        assert app.screen.current == "worker:default"


@sync
async def test_enter_on_a_process_opens_its_logs_when_stalk_has_lines_of_its_own(tmp_path):
    """Stalk's own log has a line from the start (the Flower-compatible API's address): Logs rebuilt its list
    for that entry between enter and the highlight, and showed the first process instead of the chosen one."""
    stack = Stack(make_config(tmp_path / "data", broker={"mode": "eager"}, beat=False)).start(wait=True, timeout=30)
    try:
        app = app_for(stack)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.post_message(ProcessesChanged(BUSY))
            await pilot.pause()
            await pilot.press("down", "enter")
            await pilot.pause()
            assert app.current_mode == "logs"
            assert app.screen.current == "worker:default"
    finally:
        close_remotes()
        stack.stop()


@sync
async def test_stalks_own_lines_have_their_entry_in_logs(tmp_path):
    """Stalk's own lines about the stack (asking plain workers for task events): on an attached broker there
    is no process to show them under, so Logs lists them as `stalk` once there are any."""
    from textual.widgets import OptionList

    from stalk.panel.widgets.log_view import LogView

    stack = Stack(make_config(tmp_path / "data", broker={"mode": "eager"}, beat=False,  # (the Flower API
                              flower={"enabled": False})).start(wait=True, timeout=30)  # notes its address)
    try:
        app = app_for(stack)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("6")
            await pilot.pause()
            options = app.screen.query_one("#log-processes", OptionList)
            assert options.option_count == 0
            line = "[stalk] asked 1 worker(s) to send task events (enable_events); set ... to stop"
            stack.note(line)
            for _ in range(50):
                await pilot.pause(0.1)
                if app.screen.current == "stalk":
                    break
            assert [options.get_option_at_index(i).id for i in range(options.option_count)] == ["stalk"]
            assert any(line in strip.text for strip in app.screen.query_one(LogView).lines)
            assert "stalk  1 lines" in str(app.screen.query_one("#log-status", Label).render())
    finally:
        close_remotes()
        stack.stop()
