"""Submit, Workers (with Worker detail) and Beat on a RemoteStack: every control call goes over the stack's
API to a real stack (embedded broker, the demo's `stalk worker` children). The panel's view holds no Celery
app: task names, signatures and queues come from the stack."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from textual.widgets import Select, Static, TextArea

from stalk.embedded import Stack
from stalk.embedded.service import RemoteStack
from stalk.panel.app import make_app
from stalk.panel.screens.beat import BeatScreen
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.screens.submit import SubmitScreen
from stalk.panel.screens.worker_detail import WorkerDetailScreen
from stalk.panel.screens.workers import WorkersScreen
from stalk.panel.widgets.beat_table import BeatTable
from stalk.panel.widgets.worker_table import WorkerTable

from ..api_support import remote_of
from ..conftest import module_stack
from .conftest import SIZE
from .harness import sync, until
from .test_task_screens import idle, problems_text

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("api-control-panel")]
HOST = socket.gethostname()
DEFAULT = f"default@{HOST}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("remote-control") / "data", broker={"mode": "embedded"},
                      beat=False) as running:
        yield running


@pytest.fixture(scope="module")
def remote(stack: Stack) -> Iterator[RemoteStack]:
    with remote_of(stack) as view:
        yield view


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """A pool grown here stays the module stack's: module_stack checks that nothing outlives the stack."""
    yield


def notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def select_row(table, key: str) -> None:
    table.move_cursor(row=table.get_row_index(key))


@sync
async def test_submit_lists_describes_checks_and_sends_over_the_api(stack: Stack, remote: RemoteStack) -> None:
    assert getattr(remote, "user_app", None) is None and getattr(remote, "worker_specs", None) is None
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("7")
        screen = await until(pilot, lambda: isinstance(app.screen, SubmitScreen) and "demo.add" in app.screen.task_names
                             and app.screen, "the task list from the stack")
        await pilot.press("ctrl+l", *"demo.add", "enter")
        assert screen.task_name == "demo.add"
        doc = str(screen.query_one("#task-doc", Static).render())
        assert "demo.add(x: 'int', y: 'int')" in doc and "Add two numbers." in doc
        assert {"default", "slow"} <= {value for _label, value in screen.query_one("#queue", Select)._options}
        screen.query_one("#args", TextArea).text = "[1]"  # the stack checks the signature
        await until(pilot, lambda: "missing 1 required positional argument: 'y'" in problems_text(screen),
                    "the stack's argument check")
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert screen.sent == [] and isinstance(app.screen, SubmitScreen)
        screen.query_one("#args", TextArea).text = "[20, 22]"
        await until(pilot, lambda: "ready" in problems_text(screen), "ready")
        await pilot.press("ctrl+s")
        detail = await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, "Task detail")
        await until(pilot, lambda: detail.record is not None and detail.record.state == "SUCCESS", "SUCCESS", 30)
        assert stack.events.get(detail.task_id).result == "42"


@sync
async def test_workers_grow_the_pool_and_open_a_worker_over_the_api(remote: RemoteStack) -> None:
    before = remote.control.worker_report(DEFAULT).concurrency
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("3")
        screen = await until(pilot, lambda: isinstance(app.screen, WorkersScreen) and app.screen.data.loaded
                             and DEFAULT in {w.hostname for w in app.screen.data.workers} and app.screen,
                             "the workers", 30)
        assert not screen.data.problems and "demo.add" in screen.data.task_names
        assert {q.name for q in screen.data.queues} >= {"default", "slow"}
        assert all(q.waiting is not None for q in screen.data.queues)  # depths, over the API
        select_row(screen.query_one(WorkerTable), DEFAULT)
        await pilot.press("plus")
        await until(pilot, lambda: f"pool grow by 1 sent to {DEFAULT}" in notices(app), "the grow")
        await until(pilot, lambda: remote.control.worker_report(DEFAULT).concurrency == before + 1,
                    "one more pool process", 30)
        await pilot.press("minus")
        await until(pilot, lambda: f"pool shrink by 1 sent to {DEFAULT}" in notices(app), "the shrink")
        await pilot.press("enter")
        detail = await until(pilot, lambda: isinstance(app.screen, WorkerDetailScreen) and app.screen
                             and app.screen.report is not None and app.screen.report.answered and app.screen,
                             "the worker's report", 30)
        assert detail.report.pool == "prefork" and "demo.add" in detail.report.registered
        assert "prefork" in str(detail.query_one("#worker-summary", Static).render())


@sync
async def test_beat_lists_entries_and_runs_one_now_over_the_api(remote: RemoteStack) -> None:
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("4")
        screen = await until(pilot, lambda: isinstance(app.screen, BeatScreen) and app.screen.data.rows
                             and app.screen, "the schedule", 30)
        rows = {r.name: r for r in screen.data.rows}
        assert rows["cleanup-daily"].task == "demo.cleanup_old_data" and screen.data.problem is None
        runs = rows["health-check"].total
        select_row(screen.query_one(BeatTable), "health-check")
        await pilot.press("n")
        await until(pilot, lambda: any(n.startswith("sent health-check now (task ") for n in notices(app)),
                    "the run-now notice")
        await until(pilot, lambda: {r.name: r.total for r in screen.data.rows}["health-check"] == runs + 1,
                    "the run counted", 30)
