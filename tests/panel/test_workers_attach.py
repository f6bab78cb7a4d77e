"""Workers screen attached to a cluster Stalk does not run (external mode): the workers that answer fill in
the pool and the queues, and the queues name who consumes them. Real processes: a Stalk stack's
redis-server and `stalk worker` children, seen from a second Stalk attached to its broker."""

from __future__ import annotations

import socket
import time

import pytest
from textual.widgets import Label

from stalk.embedded import Stack
from stalk.panel.workers_data import fetch_workers

from ..conftest import make_config, wait_until
from .conftest import SIZE
from .harness import app_for, sync
from .test_task_screens import until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("panel-tasks")]
HOST = socket.gethostname()


@pytest.fixture
def attached(running_stack):
    own = running_stack(broker={"mode": "redis"}, beat=False)
    external = Stack(make_config(own.paths.data_dir.parent / "ext", broker={"url": own.broker.broker_url}))
    external.start()
    yield external
    external.stop()


def _answered(data) -> bool:
    return {w.hostname for w in data.workers} >= {f"default@{HOST}", f"slow@{HOST}"}


def test_attached_workers_get_pool_and_queues_from_their_answers(attached) -> None:
    assert attached.processes() == []
    data = wait_until(lambda: _answered(d := fetch_workers(attached, [])) and d, timeout=30)
    by_host = {w.hostname: w for w in data.workers}
    default = by_host[f"default@{HOST}"]
    assert default.process is None and default.pool == "prefork" and default.concurrency
    assert "default" in default.queues
    consumers = {q.name: q.consumers for q in data.queues}
    assert f"default@{HOST}" in consumers["default"] and f"slow@{HOST}" in consumers["slow"]
    assert data.loaded and not data.problems


@sync
async def _workers_screen(stack) -> None:
    app = app_for(stack, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        status = app.screen.query_one("#workers-status", Label)
        assert "asking the workers" in str(status.render())  # not "0 workers ... no control API"
        await until(pilot, lambda: _answered(app.screen.data), "both workers in the table", 30)
        assert "2 workers, 2 online" in str(status.render())
        await pilot.press("tab")
        table = app.screen.query_one("#queue-table")
        cells = [str(c) for row in range(table.row_count) for c in table.get_row_at(row)]
        assert f"default@{HOST}" in " ".join(cells) and "nobody consumes it" not in cells


def test_workers_screen_on_an_attached_cluster(attached) -> None:
    _workers_screen(attached)
