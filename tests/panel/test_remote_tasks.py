"""The Tasks screen and the task detail on a RemoteStack: every read over the stack's API (the panel
holds no event store of its own)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator

import pytest
from textual.widgets import Static

from stalk.embedded import Stack
from stalk.embedded.events import EventStore
from stalk.embedded.service import RemoteStack
from stalk.embedded.status_file import read_status
from stalk.panel.app import make_app
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.tasks import REQUERY_AFTER, TasksScreen
from stalk.panel.widgets.task_table import TaskTable

from ..api_support import remote_of
from ..conftest import wait_until
from .conftest import SIZE
from .harness import sync
from .test_task_screens import idle, table_ids, until


@pytest.fixture(scope="module")
def remote(eager_stack: Stack) -> Iterator[RemoteStack]:
    wait_until(lambda: read_status(eager_stack.paths.state), 10, 0.02)  # the API's address, for clients
    with remote_of(eager_stack) as view:
        yield view


def detail_text(app) -> str:
    screen = app.screen
    return str(screen.query_one("#detail-body", Static).render()) if isinstance(screen, DetailScreen) else ""


@sync
async def test_tasks_filter_and_detail_over_the_api(eager_stack: Stack, remote: RemoteStack) -> None:
    control = eager_stack.control
    ok = [control.submit({"name": "demo.add", "args": [i, 2000]}).id for i in range(3)]
    failed = control.submit({"name": "demo.fail", "args": ["remote-filter"]}).id
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        assert isinstance(app.screen, TasksScreen)
        await until(pilot, lambda: set(ok) | {failed} <= set(table_ids(app)), "the tasks in the table")
        await pilot.press("slash", *"state:failure")
        await until(pilot, lambda: failed in table_ids(app) and not set(ok) & set(table_ids(app)), "failures only")
        await pilot.press("escape", "o")
        await until(pilot, lambda: app.screen.filter.sort_key == "name" and set(ok) <= set(table_ids(app)),
                    "sorted by name")
        names = [app.screen.query_one(TaskTable).row(t).name for t in table_ids(app)]
        assert names == sorted(names, reverse=True)
        await pilot.press("slash", *failed[:13])
        await until(pilot, lambda: table_ids(app) == [failed], "one task by id")
        await pilot.press("enter", "enter")  # the search box hands over to the table; enter opens the row
        await until(pilot, lambda: "remote-filter" in detail_text(app), "the failed task's detail")
        assert app.screen.record.state == "FAILURE" and "KeyError: 'retries'" in detail_text(app)
        assert app.screen.data.events == eager_stack.events.events_of(failed)  # the timeline, over the API
        late = control.submit({"name": "demo.add", "args": [5, 5]}).id  # a change over the feed: a re-query
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen), "back on Tasks")
        await pilot.press("escape")  # the search cleared
        await until(pilot, lambda: late in table_ids(app), "the new task")


@sync
async def test_the_panel_holds_no_event_store_of_its_own(eager_stack: Stack, remote: RemoteStack) -> None:
    eager_stack.control.submit({"name": "demo.add", "args": [1, 1]})
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: table_ids(app), "rows on Tasks")
        gc.collect()
        stores = [o for o in gc.get_objects() if isinstance(o, EventStore)]
        assert stores == [eager_stack.events]  # the server's, in this test process: no other
        assert app.stack is remote and type(remote.events).__name__ == "RemoteEvents"


def test_the_dashboard_and_workers_parts_read_the_store_over_the_api(eager_stack: Stack,
                                                                     remote: RemoteStack) -> None:
    from stalk.panel.dashboard_data import fetch_dashboard
    from stalk.panel.workers_data import fetch_workers

    failed = eager_stack.control.submit({"name": "demo.fail", "args": ["dashboard"]}).id
    wait_until(lambda: eager_stack.events.get(failed) and eager_stack.events.get(failed).state == "FAILURE", 10)
    data = fetch_dashboard(remote)
    event_parts = ("throughput", "counts", "recent failures")
    assert not [p for p in data.problems if p.startswith(event_parts)], data.problems
    assert data.counts == eager_stack.events.counts_by_state()
    assert data.recent[0].task_id == failed and data.throughput is not None and data.failures is not None
    workers = fetch_workers(remote, remote.processes())
    assert not [p for p in workers.problems if p.startswith("workers:")], workers.problems


@sync
async def test_live_refreshes_wait_for_their_interval_however_often_changes_come(eager_stack: Stack,
                                                                                 remote: RemoteStack) -> None:
    """Over the API, change batches arrive up to 30 times a second: a live refresh still starts at most
    every REQUERY_AFTER s (each is a request and 500 rows to decode and draw)."""
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen._shown_generation == 0,
                    "rows on Tasks")
        starts: list[float] = []
        query = remote.events.query

        def counted(*args, **kwargs):
            starts.append(time.monotonic())
            return query(*args, **kwargs)

        remote.events.query = counted
        halt = threading.Event()

        def submit() -> None:  # eager tasks: events every few ms, a change batch every frame
            while not halt.is_set():
                eager_stack.control.submit({"name": "demo.add", "args": [1, 2]})
                time.sleep(0.01)

        feeder = threading.Thread(target=submit, daemon=True)
        feeder.start()
        try:
            for _ in range(100):  # 2 s, or longer under load: until a few refreshes ran
                await asyncio.sleep(0.1)
                if len(starts) >= 4 and _ >= 20:
                    break
        finally:
            halt.set()
            feeder.join(5)
            del remote.events.query
        assert len(starts) >= 2, "live refreshes ran"
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert min(gaps) >= REQUERY_AFTER - 0.02, gaps
