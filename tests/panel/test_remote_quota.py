"""The Quota screen and the Dashboard's quota summary on a RemoteStack: the stack runs as its own process
(`stalk up`), the panel reads the ledger only through the stack's API and opens no sqlite file itself."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stalk.embedded.paths import StackPaths
from stalk.embedded.quota import QuotaExhausted, QuotaLedger
from stalk.embedded.service import RemoteStack
from stalk.embedded.service.remote_quota import RemoteQuota
from stalk.panel.app import make_app
from stalk.panel.quota_access import open_ledger
from stalk.panel.widgets.quota_meter import QuotaMeter
from stalk.panel.widgets.quota_summary import QuotaSummary
from tests.conftest import ROOT, clean_env, stalk_cmd

from .conftest import SIZE
from .harness import settle, sync, until

pytestmark = pytest.mark.procs  # the stack is a `stalk up` process
APP = "tests.apps.quota_app:app"  # quota "api": 50 units a day, 10 kept for priority calls


def read_until(proc: subprocess.Popen, marker: str) -> None:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never printed:\n{''.join(seen)}")


def spend(quota_db: Path) -> None:
    """7 searches granted (35 units) and 3 lookups (3), then a search refused: 38 used, 10 kept, 2 left."""
    with QuotaLedger(quota_db, create=False) as ledger:
        for i in range(7):
            ledger.reserve("api", "search", f"search-{i}")
            ledger.settle(f"search-{i}", ok=i != 3)
        for i in range(3):
            ledger.reserve("api", "list", f"lookup-{i}")
        with pytest.raises(QuotaExhausted):
            ledger.reserve("api", "search", "search-7")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("remote-quota") / "data"
    proc = subprocess.Popen(stalk_cmd("up", "-A", APP, "--broker", "eager", "--no-beat", "--data-dir", str(data)),
                            cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        read_until(proc, "stack is up")
        spend(StackPaths(data).quota_db)
        yield data
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture
def remote(data_dir: Path) -> Iterator[RemoteStack]:
    stack = RemoteStack.on_data_dir(data_dir)
    yield stack
    stack.close()


def quota_files(data_dir: Path) -> list[str]:
    """The files of this stack's quota db (db, -wal, -shm) this process has open (other tests' stacks in
    this process keep their own ledgers open)."""
    return [f.path for f in psutil.Process().open_files()
            if "quota.sqlite3" in os.path.basename(f.path) and f.path.startswith(str(data_dir))]


def text_of(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]


@sync
async def test_quota_screen_and_dashboard_read_the_ledger_over_the_api(remote: RemoteStack) -> None:
    assert isinstance(open_ledger(remote), RemoteQuota)
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        meter = app.screen.query_one(QuotaMeter)
        await until(pilot, lambda: "api" in text_of(meter), "the Dashboard's quota summary")
        assert "38+10/50  2 left" in text_of(meter)
        await pilot.press("5")
        screen = app.screen
        await until(pilot, lambda: screen.data.status() is not None, "the Quota screen's first poll")
        status = screen.data.status()
        assert (status.used, status.reserved, status.remaining, status.denied, status.exhausted) == (38, 10, 2, 1, True)
        assert str(status.resets_at.tzinfo) == "America/Los_Angeles"
        assert [r.key for r in screen.data.requests[:3]] == ["search-7", "lookup-2", "lookup-1"]
        states = {r.key: r.state for r in screen.data.requests}
        assert states["search-3"] == "failed" and states["search-7"] == "denied" and states["lookup-0"] == "reserved"
        assert len(screen.data.requests) == 11 and screen.data.history[-1][1] == 38
        summary = text_of(screen.query_one(QuotaSummary))
        assert "api" in summary and "38" in summary
        assert screen.data.problem is None
        assert quota_files(remote.paths.data_dir) == []  # the panel's process never opened the ledger


@sync
async def test_a_corrupt_ledger_is_one_line_on_the_quota_screen(remote: RemoteStack, data_dir: Path) -> None:
    """Runs last: the stack's ledger is replaced by garbage (the stack process opens the new file)."""
    db = StackPaths(data_dir).quota_db
    junk = db.with_name("junk")
    junk.write_bytes(b"this is not a database\n" * 100)
    os.replace(junk, db)
    app = make_app(remote.config, stack=remote, probe_broker=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        screen = app.screen
        await until(pilot, lambda: screen.data.problem is not None, "the Quota screen's poll")
        assert "is corrupt" in screen.data.problem and str(db) in screen.data.problem
        assert "is corrupt" in text_of(screen.query_one("#quota-tabs"))
        assert quota_files(remote.paths.data_dir) == []
