"""Quota screen over a real QuotaLedger on a tmp file with a frozen clock: bars, hourly chart, forecast,
reset, request log and history; ←/→ switch quotas; snapshots of a busy, an exhausted, an empty and a
broken ledger."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stalk.embedded.paths import StackPaths
from stalk.embedded.quota import QuotaExhausted, QuotaLedger, QuotaSpec
from stalk.embedded.quota import clock as quota_clock
from stalk.panel.messages import BrokerChanged
from stalk.panel.widgets.hourly_chart import hourly_chart

from .conftest import SIZE
from .harness import FROZEN, REDIS, app_for, serving, settle, sync, until

NOW = datetime.fromtimestamp(FROZEN, UTC)  # 2026-05-28 20:26:40 UTC
DAY = NOW.replace(hour=0, minute=0, second=0)
OPENAI_HOURS = [0, 0, 0, 0, 0, 0, 40, 120, 310, 520, 610, 580, 450, 470, 530, 560, 610, 480, 390, 1000, 1400]


class Clock:
    """The ledger's clock, frozen at `at` (tests move it to write past requests)."""

    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def ledger_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(quota_clock, "utcnow", clock)
    return clock


def charge(ledger: QuotaLedger, clock: Clock, name: str, at: datetime, units: int, key: str,
           state: str = "ok", priority: bool = False) -> None:
    clock.at = at
    try:
        ledger.reserve(name, units, key, priority=priority)
    except QuotaExhausted:
        return
    if state != "reserved":
        ledger.settle(key, ok=state == "ok")


def fill(path: Path, clock: Clock) -> None:
    """openai: busy, running out before the reset; geocode: exhausted with denials; sms: idle today."""
    ledger = QuotaLedger(path)
    ledger.define(QuotaSpec("openai", 10_000, priority_reserve=500, refund_failed=True))
    ledger.define(QuotaSpec("geocode", 2_500))
    ledger.define(QuotaSpec("sms", 1_000))
    for back in range(13, 0, -1):  # history: one charge per past day, varied
        day = DAY - timedelta(days=back)
        charge(ledger, clock, "openai", day + timedelta(hours=12), 2_000 + (back * 1_337) % 7_500, f"old-{back}")
        charge(ledger, clock, "geocode", day + timedelta(hours=9), 600 + (back * 379) % 1_900, f"geo-old-{back}")
        if back % 4 == 0:
            charge(ledger, clock, "sms", day + timedelta(hours=8), 120 + back * 9, f"sms-old-{back}")
    for hour, units in enumerate(OPENAI_HOURS):
        for part in range(2):
            at = DAY + timedelta(hours=hour, minutes=10 + part * 25)
            if units and at <= NOW:
                charge(ledger, clock, "openai", at, units // 2, f"oa-{hour:02d}-{part}")
    charge(ledger, clock, "openai", NOW - timedelta(minutes=7), 35, "b5d7c0de-failed-call", state="failed")
    charge(ledger, clock, "openai", NOW - timedelta(minutes=3), 12, "9a1f3e42-running-now", state="reserved")
    charge(ledger, clock, "openai", NOW - timedelta(minutes=1), 8, "7c2e99a0-priority", priority=True)
    for i in range(10):
        charge(ledger, clock, "geocode", DAY + timedelta(hours=6 + i), 250, f"geo-{i}")
    charge(ledger, clock, "geocode", NOW - timedelta(minutes=20), 25, "geo-denied-1")
    charge(ledger, clock, "geocode", NOW - timedelta(minutes=4), 25, "geo-denied-2")
    ledger.close()
    clock.at = NOW


def app_on(stack, data_dir: Path):
    """The panel over the API of `stack` serving the quota ledger of `data_dir`."""
    return app_for(serving(stack, paths=StackPaths(data_dir)))


def poll_drawn(screen) -> bool:
    """No poll due soon: the one a key or the screen's arrival asks for (0.01 s later) was fetched and
    drawn, and the next is the regular one (or the screen does not poll)."""
    timer = getattr(screen, "_timer", None)
    return timer is None or timer._interval >= screen.POLL_EVERY


def on_quota(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(BrokerChanged(REDIS))
        await pilot.pause()
        await pilot.press("5")
        await until(pilot, lambda: poll_drawn(pilot.app.screen), "the Quota screen's first poll")
        for key in press:
            await pilot.press(key)
            await until(pilot, lambda: poll_drawn(pilot.app.screen), f"the poll after {key}")

    return run_before


@pytest.fixture
def busy_dir(tmp_path: Path, ledger_clock: Clock) -> Path:
    data_dir = tmp_path / "data"
    fill(StackPaths(data_dir).quota_db, ledger_clock)
    return data_dir


# -- pure parts ---------------------------------------------------------------------------------


def test_chart_marks_the_current_hour_and_dots_the_rest() -> None:
    text = hourly_chart([0, 8, 4] + [0] * 21, current=2, start_hour=0, height=2)
    rows = text.splitlines()
    assert "[$accent]" in rows[1] and "··" in rows[1] and rows[-1].strip().endswith("21[/]")


def test_ledger_numbers_match_what_was_charged(busy_dir: Path) -> None:
    ledger = QuotaLedger(StackPaths(busy_dir).quota_db)
    status = ledger.status("openai")
    charged = sum(u // 2 for h, u in enumerate(OPENAI_HOURS) for m in (10, 35)
                  if DAY + timedelta(hours=h, minutes=m) <= NOW)
    assert status.used == charged + 12 + 8  # the failed call was refunded
    assert status.exhausted_at is not None and ledger.status("geocode").remaining == 0
    ledger.close()


# -- Pilot flows --------------------------------------------------------------------------------


@sync
async def test_arrows_switch_quotas_even_from_the_log(eager_stack, busy_dir) -> None:
    app = app_on(eager_stack, busy_dir)
    async with app.run_test(size=SIZE) as pilot:
        await on_quota()(pilot)
        screen = app.screen
        assert screen.data.current == "geocode"  # by name
        await on_quota("right")(pilot)
        assert screen.data.current == "openai" and screen.data.status().name == "openai"
        await on_quota("l", "l")(pilot)
        assert screen.data.current == "geocode"
        await on_quota("left", "h")(pilot)
        assert screen.data.current == "openai"


@sync
async def test_new_charges_show_up_on_the_next_poll(eager_stack, busy_dir, ledger_clock) -> None:
    app = app_on(eager_stack, busy_dir)
    async with app.run_test(size=SIZE) as pilot:
        await on_quota("right")(pilot)
        screen = app.screen
        used, logged = screen.data.status().used, len(screen.data.requests)
        ledger = QuotaLedger(StackPaths(busy_dir).quota_db)
        charge(ledger, ledger_clock, "openai", NOW, 40, "fresh-task-id")
        ledger.close()
        screen.poll_soon(0.01)
        await until(pilot, lambda: len(screen.data.requests) > logged, "the next poll")
        assert screen.data.status().used == used + 40 and len(screen.data.requests) == logged + 1
        log = screen.query_one("#quota-log")
        assert log.cursor_row == 1 and "7c2e99a0-priority" in log.selected  # the cursor stays on its row


# -- snapshots ----------------------------------------------------------------------------------


def test_quota_busy_snapshot(snap_compare, eager_stack, busy_dir):
    assert snap_compare(app_on(eager_stack, busy_dir), terminal_size=SIZE, run_before=on_quota("right"))


def test_quota_exhausted_snapshot(snap_compare, eager_stack, busy_dir):
    assert snap_compare(app_on(eager_stack, busy_dir), terminal_size=SIZE, run_before=on_quota())


def test_quota_no_ledger_snapshot(snap_compare, eager_stack, tmp_path):
    assert snap_compare(app_on(eager_stack, tmp_path / "none"), terminal_size=SIZE, run_before=on_quota())


@pytest.fixture
def fixed_dir() -> Iterator[Path]:
    """A data dir at a fixed path: the error message names the file, and the snapshot must not vary."""
    path = Path(tempfile.gettempdir()) / "stalk-quota-snapshot" / "data"
    shutil.rmtree(path.parent, ignore_errors=True)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_quota_broken_ledger_snapshot(snap_compare, eager_stack, fixed_dir):
    db = StackPaths(fixed_dir).quota_db
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a sqlite database, it was overwritten by accident" * 40)
    assert snap_compare(app_on(eager_stack, fixed_dir), terminal_size=SIZE, run_before=on_quota())
