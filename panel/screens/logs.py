"""Logs: each supervised process's output, follow mode, filter, level colouring."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from stalk.embedded import OWN_LOG, LogLine
from stalk.embedded.service import ApiError
from stalk.panel.actions import bindings
from stalk.panel.colours import state_text
from stalk.panel.markup_text import escape
from stalk.panel.messages import LogsFetched, LogsShow
from stalk.panel.screens.base import StalkScreen
from stalk.panel.widgets.log_view import LogView

POLL_EVERY = 0.25
KEEP = 5000
NO_PROCESS = {  # why a stack in this mode has no log to show
    "external": "Stalk runs no process on an external broker: its workers log where they run",
    "eager": "eager mode runs no process: tasks run inside Stalk",
}


class LogsScreen(StalkScreen):
    SCOPE = "logs"
    BINDINGS = bindings("logs")
    CSS_PATH = "../styles/logs.tcss"

    def compose_body(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(id="log-processes")
            with Vertical(id="log-pane"):
                yield Label(id="log-status")
                yield Input(placeholder="filter lines (esc clears)", id="log-filter")
                yield LogView(id="log-view")

    def on_mount(self) -> None:
        self.lines: dict[str, deque[LogLine]] = {}
        self.since: dict[str, int] = {}
        self.current: str | None = None
        self.needle = ""
        self._polling = False
        self.watch(self.app, "processes", self._show_processes)
        self.watch(self.app, "phase", lambda _p: self._phase_changed())

    # -- process list ---------------------------------------------------------------------------

    def _show_processes(self, snapshot: tuple) -> None:
        """Update prompts in place; rebuild the list only when the set of processes changed."""
        options = self.query_one(OptionList)
        variables = self.app.get_css_variables()
        names = [p.name for p in snapshot]
        prompts = [Text.assemble(f"{p.name:<18} ", state_text(p.state, variables)) for p in snapshot]
        if self.lines.get(OWN_LOG):  # Stalk's own lines about the stack, once there are any
            names.append(OWN_LOG)
            prompts.append(Text(OWN_LOG))
        if names == [options.get_option_at_index(i).id for i in range(options.option_count)]:
            for name, prompt in zip(names, prompts, strict=True):
                options.replace_option_prompt(name, prompt)
        else:
            with options.prevent(OptionList.OptionHighlighted):  # the rebuild's own highlights are not picks
                options.clear_options()
                options.add_options([Option(prompt, id=name) for name, prompt in zip(names, prompts, strict=True)])
            if names:
                if self.current not in names:
                    self.current = names[0]
                    self._redraw()
                with options.prevent(OptionList.OptionHighlighted):  # set here, not picked: no event that
                    options.highlighted = names.index(self.current)  # could arrive after a later pick
        self._show_status()

    @on(OptionList.OptionHighlighted, "#log-processes")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.current:
            self.current = event.option.id
            self._redraw()

    @on(LogsShow)
    def _show_named(self, message: LogsShow) -> None:
        names = [p.name for p in self.app.processes]  # type: ignore[attr-defined]
        if message.name in names:
            if message.name != self.current:  # now, not at the highlight event: a rebuild of the list (Stalk's
                self.current = message.name   # own entry arriving) in between would highlight the old one
                self._redraw()
            options = self.query_one(OptionList)
            with options.prevent(OptionList.OptionHighlighted):
                options.highlighted = names.index(message.name)

    def action_next_process(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def action_previous_process(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    # -- lines ----------------------------------------------------------------------------------

    def _phase_changed(self) -> None:
        self._show_status()
        self._start_polling()

    def _start_polling(self) -> None:
        if not self._polling and self.stack is not None and self.stack.broker is not None:
            self._polling = True
            self.poll()

    @work(thread=True, exclusive=True, group="logs-poll", exit_on_error=False)
    def poll(self) -> None:
        stack = self.stack
        if stack is None:  # polling starts once there is a stack (_start_polling)
            return
        fresh: dict[str, list[LogLine]] = {}
        try:
            for p in stack.processes():
                try:
                    lines = stack.logs(p.name, self.since.get(p.name, 0))
                except (KeyError, ApiError):  # gone meanwhile (a stack process answers 404)
                    continue
                if lines:
                    fresh[p.name] = lines
            own = stack.logs(OWN_LOG, self.since.get(OWN_LOG, 0))
            if own:
                fresh[OWN_LOG] = own
        except ApiError:  # a stack process that does not answer now: the next poll asks again
            pass
        self.post_message(LogsFetched(fresh))

    @on(LogsFetched)
    def _fetched(self, message: LogsFetched) -> None:
        self.add_lines(message.lines)
        if self._polling:
            self.set_timer(POLL_EVERY, self.poll)

    def add_lines(self, fresh: dict[str, list[LogLine]]) -> None:
        variables = self.app.get_css_variables()
        first_own = bool(fresh.get(OWN_LOG)) and not self.lines.get(OWN_LOG)
        for name, lines in fresh.items():
            self.lines.setdefault(name, deque(maxlen=KEEP)).extend(lines)
            self.since[name] = lines[-1].seq
            if name == self.current:
                self.query_one(LogView).append(lines, self.needle, variables)
        if first_own:  # the list gains Stalk's own entry
            self._show_processes(self.app.processes)  # type: ignore[attr-defined]
        if fresh:
            self._show_status()

    def _redraw(self) -> None:
        view = self.query_one(LogView)
        view.show_all(self.lines.get(self.current or "", ()), self.needle, self.app.get_css_variables())
        self._show_status()

    def _show_status(self) -> None:
        status = self.query_one("#log-status", Label)
        why = NO_PROCESS.get(getattr(self.stack, "mode", None) or "")
        if self.current is None and why:
            status.update(f"[b]no process[/b]  [$foreground-muted]{why}[/]")
            return
        view = self.query_one(LogView)
        total = len(self.lines.get(self.current or "", ()))
        follow = "[$success]follow on[/]" if view.auto_scroll else "[$warning]follow off[/]"
        where = escape(self.current or "no process")
        needle = f"  filter: [b]{escape(self.needle)}[/b]" if self.needle else ""
        status.update(f"[b]{where}[/b]  {total} lines  {follow}{needle}")

    # -- follow and filter ----------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        view = self.query_one(LogView)
        view.auto_scroll = not view.auto_scroll
        if view.auto_scroll:
            view.scroll_end(animate=False)
        self._show_status()

    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.needle = event.value
        self._redraw()

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self) -> None:
        self.query_one(LogView).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.value = ""
        box.display = False
        self.query_one(LogView).focus()
