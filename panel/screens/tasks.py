"""Tasks: the live table over the event store; filter, incremental search, sort; enter opens a task.

The store may hold 100,000 tasks: the screen asks for the first LIMIT rows of the current filter and
sort. Live refreshes query in a thread worker, at most one in flight, when a batch of events arrived,
and no more often than their queries' cost allows (LIVE_SHARE).
A key that changes the filter queries at once on the UI thread (an in-memory read, 0.1-15 ms, that
waits at most INLINE_WAIT for the store's lock), so its rows are in the key's first frame; when the
store is busy the worker asks instead.
"""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Input, Label

from stalk.embedded import FOREGROUND
from stalk.embedded.events import StoreBusy, Unwanted
from stalk.panel.actions import bindings
from stalk.panel.markup_text import escape
from stalk.panel.messages import OpenTask
from stalk.panel.screens.base import StalkScreen
from stalk.panel.task_rows import SORT_KEYS, TASK_STATES, TaskFilter, TaskRow, parse_filter
from stalk.panel.widgets.task_table import TaskTable

LIMIT = 500
REQUERY_AFTER = 0.25  # live refreshes at most 4 times a second (bench/panel_load.py)
LIVE_SHARE = 0.05  # ...and spend at most this share of the time in their queries: a view whose query
# costs 20 ms (a search sorted by name over 100,000 tasks) refreshes every 0.4 s; keys query at once
INLINE_WAIT = 0.005  # s a key's own query waits for the store's lock before handing over to the worker


def rows_from(records: list) -> list[TaskRow]:
    return [TaskRow.of(record) for record in records]


class TasksScreen(StalkScreen):
    SCOPE = "tasks"
    BINDINGS = bindings("tasks")
    CSS_PATH = "../styles/tasks.tcss"

    class Fetched(Message):
        def __init__(self, rows: list[TaskRow], problem: str | None, generation: int, cost: float = 0.0) -> None:
            super().__init__()
            self.rows = rows
            self.problem = problem
            self.generation = generation  # the filter it answers; older answers are dropped
            self.cost = cost  # s the query took

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="search: words, state:failure name:demo.add queue:slow worker:…", id="task-search")
        yield Label(id="task-status")
        yield TaskTable(id="task-table")

    def on_mount(self) -> None:
        self.filter = TaskFilter()
        self._inflight = False
        self._dirty = True
        self._shown = 0
        self._generation = 0
        self._shown_generation = -1  # the filter whose rows are on screen (a query for it is a live refresh)
        self._status_text = ""
        self._query_cost = 0.0  # s the last query took
        self._next_live = 0.0  # monotonic s before which no live refresh starts (REQUERY_AFTER, LIVE_SHARE)
        self.watch(self.app, "tasks_version", lambda _v: self._mark_dirty())
        self.watch(self.app, "phase", lambda _p: self._mark_dirty())
        # the rows are drawn with the theme's colours: a new theme redraws them even on a quiet stack
        self.watch(self.app, "theme", lambda _t: self._mark_dirty(), init=False)
        table = self.query_one(TaskTable)
        table.set_sort(self.filter.sort_key, self.filter.reverse)
        table.focus()
        self._show_status()
        if self.events is not None:
            self.run_worker(self._prepare_indexes, thread=True, group="tasks-indexes", exit_on_error=False)

    def _prepare_indexes(self) -> None:
        """The search texts and every sort key's index, built once and kept: a sort key or the first key
        of a search then answers at once (otherwise it waited for a build of the whole store: 100-200 ms
        under load, bench/panel_load.py)."""
        for key in SORT_KEYS:
            self.events.prepare_sort(key, keep=True)
        self.events.prepare_search(keep=True)

    # -- query loop -----------------------------------------------------------------------------

    @property
    def events(self):
        return getattr(self.stack, "events", None)

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._maybe_fetch()

    def _maybe_fetch(self) -> None:
        if self._inflight or not self._dirty or self.events is None:
            return
        live = self._generation == self._shown_generation
        if live and time.monotonic() < self._next_live - 0.01:
            return  # a change batch (up to 30 a second over the API) waits for the timer _show_rows set
        self._inflight, self._dirty = True, False
        self.fetch(self.filter, self._generation, live)  # read here: the thread may start after the next key

    @work(thread=True, group="tasks-fetch", exit_on_error=False)
    def fetch(self, flt: TaskFilter, generation: int, live: bool) -> None:
        """`live`: a refresh of rows on screen; it steps aside while a key is answered, before it takes
        the store's lock and after it frees it (a key's own query, when the quick read could not
        answer it, does not)."""
        wanted = lambda: generation == self._generation  # noqa: E731
        if live:
            FOREGROUND.step_aside()
        started = time.perf_counter()
        try:  # a key that changes the filter meanwhile stops this walk and takes the store's lock
            records = list(self.events.query(**flt.query_kwargs(LIMIT), wanted=wanted))
        except Unwanted:
            return
        except Exception as exc:  # a store error is shown, the screen keeps going
            self.post_message(self.Fetched([], f"query failed: {exc}", generation))
            return
        cost = time.perf_counter() - started
        if live:
            FOREGROUND.step_aside()
        self.post_message(self.Fetched(rows_from(records), None, generation, cost))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        if message.generation != self._generation:
            return  # rows for a filter the user already changed; that filter's query is running
        self._inflight = False
        self._query_cost = message.cost
        self._show_rows(message.rows, message.problem)

    def _show_rows(self, rows: list[TaskRow], problem: str | None) -> None:
        self.query_one(TaskTable).show(rows, self.app.get_css_variables())
        self._shown_generation = self._generation
        self._shown = len(rows)
        self._show_status(problem)
        wait = max(REQUERY_AFTER, self._query_cost / LIVE_SHARE)
        self._next_live = time.monotonic() + wait
        self.set_timer(wait, self._maybe_fetch)

    def _query_now(self) -> bool:
        """The current filter's rows, read on the UI thread; False if the store stayed busy."""
        started = time.perf_counter()
        try:
            records = self.events.query(**self.filter.query_kwargs(LIMIT), wait=INLINE_WAIT)
        except StoreBusy:
            return False
        except Exception as exc:  # a store error is shown, the screen keeps going
            self._show_rows([], f"query failed: {exc}")
            return True
        self._query_cost = time.perf_counter() - started
        self._show_rows(rows_from(records), None)
        return True

    def _show_status(self, problem: str | None = None) -> None:
        if self.events is None:
            text = "[$foreground-muted]no event store on this stack yet[/]"
        else:
            arrow = "↓" if self.filter.reverse else "↑"
            limit = f" (first {LIMIT})" if self._shown >= LIMIT else ""
            described = self.filter.describe()
            where = f"  filter: [b]{escape(described)}[/b]" if described else ""
            text = f"[b]{self._shown}[/b] tasks{limit}{where}  sort: {self.filter.sort_key} {arrow}"
            if not self._shown:
                text += ("  [$foreground-muted]no task matches (esc clears the filter)[/]" if described
                         else "  [$foreground-muted]no tasks yet: 7 opens Submit[/]")
        if problem:
            text += f"  [$error]{escape(problem)}[/]"
        if text != self._status_text:  # one fixed-height line: no layout pass per refresh
            self._status_text = text
            self.query_one("#task-status", Label).update(text, layout=False)

    def set_filter(self, flt: TaskFilter) -> None:
        """A new filter queries at once; the answer of a query still running is dropped."""
        self.filter = flt
        self.query_one(TaskTable).set_sort(flt.sort_key, flt.reverse)
        self._generation += 1
        self._inflight = False
        if self.events is not None and self._query_now():
            self._dirty = False
        else:
            self._show_status()
            self._mark_dirty()

    # -- actions --------------------------------------------------------------------------------

    def action_search(self) -> None:
        box = self.query_one("#task-search", Input)
        box.display = True
        box.focus()
        if self.events is not None:
            self.run_worker(self.events.prepare_search, thread=True, group="tasks-search", exit_on_error=False)

    @on(Input.Changed, "#task-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.set_filter(parse_filter(event.value, self.filter))

    @on(Input.Submitted, "#task-search")
    def _search_done(self) -> None:
        self.query_one(TaskTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#task-search", Input)
        box.value = ""
        box.display = False
        self.set_filter(TaskFilter(sort_key=self.filter.sort_key, reverse=self.filter.reverse))
        self.query_one(TaskTable).focus()

    def action_cycle_state(self) -> None:
        states = (None, *TASK_STATES)
        nxt = states[(states.index(self.filter.state) + 1) % len(states)]
        self.set_filter(TaskFilter(**{**self.filter.__dict__, "state": nxt}))

    def action_cycle_sort(self) -> None:
        nxt = SORT_KEYS[(SORT_KEYS.index(self.filter.sort_key) + 1) % len(SORT_KEYS)]
        self.set_filter(TaskFilter(**{**self.filter.__dict__, "sort_key": nxt}))

    def action_reverse_sort(self) -> None:
        self.set_filter(TaskFilter(**{**self.filter.__dict__, "reverse": not self.filter.reverse}))

    @on(TaskTable.HeaderSelected)
    def _header(self, event: TaskTable.HeaderSelected) -> None:
        key = event.column
        if key in SORT_KEYS:
            reverse = not self.filter.reverse if key == self.filter.sort_key else self.filter.reverse
            self.set_filter(TaskFilter(**{**self.filter.__dict__, "sort_key": key, "reverse": reverse}))

    def action_open(self) -> None:
        task_id = self.query_one(TaskTable).selected
        if task_id:
            self.app.post_message(OpenTask(task_id))

    @on(TaskTable.RowSelected)
    def _row_selected(self, event: TaskTable.RowSelected) -> None:
        self.app.post_message(OpenTask(event.task_id))
