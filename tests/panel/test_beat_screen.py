"""Beat screen over a real Control: entries from a real app's beat_schedule, last runs from a real beat
shelve file, the app's clock frozen; run now (n or enter) really sends (eagerly) the entry's task."""

from __future__ import annotations

import shelve
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from celery.beat import ScheduleEntry
from celery.schedules import crontab, schedule

from stalk.embedded.control import Control, ControlError
from stalk.embedded.control.beat_runs import RUN_NOW, BeatRuns
from stalk.embedded.demo.schedule import zoned_crontab
from stalk.panel.beat_rows import BeatRow, schedule_text, when
from stalk.panel.messages import BrokerChanged, ProcessesChanged

from .conftest import SIZE
from .harness import BUSY, FROZEN, REDIS, app_for, in_process_app, serving, settle, sync

NOW = datetime.fromtimestamp(FROZEN, UTC)
RAN: list[tuple[str, tuple]] = []

SCHEDULE = {
    "cleanup-nightly": {"task": "jobs.cleanup", "schedule": crontab(hour=3, minute=0), "kwargs": {"days": 30},
                        "options": {"queue": "slow"}},
    "heartbeat-30s": {"task": "jobs.add", "schedule": 30.0, "args": (2, 3)},
    "report-hourly": {"task": "jobs.report", "schedule": schedule(3600), "args": ("daily",)},
    "sync-feeds": {"task": "jobs.sync", "schedule": crontab(minute="*/5")},
}
LAST_RUNS = {"cleanup-nightly": (NOW - timedelta(hours=21, minutes=7), 41),
             "heartbeat-30s": (NOW - timedelta(seconds=12), 2_913),
             "report-hourly": (NOW - timedelta(minutes=55), 77),
             "sync-feeds": (NOW - timedelta(minutes=5, seconds=40), 1_280)}


def recorder(name: str):
    def run(*args: object, **kwargs: object) -> None:
        RAN.append((name, args))

    run.__name__ = name.replace(".", "_")
    return run


def beat_app() -> Celery:
    app = Celery("beat_screen", set_as_current=False)
    app.conf.update(task_always_eager=True, timezone="UTC", enable_utc=True, beat_schedule=SCHEDULE)
    for name in ("jobs.cleanup", "jobs.add", "jobs.report", "jobs.sync"):
        app.task(name=name, shared=False)(recorder(name))
    app.now = lambda: NOW  # schedules take "now" from their app: frozen
    return app


def schedule_file(path: Path, app: Celery) -> Path:
    """What beat's PersistentScheduler keeps: a shelve with `entries` -> ScheduleEntry."""
    entries = {name: ScheduleEntry(name, SCHEDULE[name]["task"], last, count, app=app,
                                   schedule=SCHEDULE[name]["schedule"])
               for name, (last, count) in LAST_RUNS.items()}
    with shelve.open(str(path)) as store:
        store["entries"] = entries
    return path


@pytest.fixture
def control(tmp_path: Path) -> Control:
    app = beat_app()
    return Control(app, user_app=app, eager=True, beat_schedule=schedule_file(tmp_path / "beat-schedule", app))


def app_with(stack, control=None):
    """The panel over the API of `stack` serving `control` (None: none)."""
    return app_for(serving(stack, control=control))


def on_beat(*press: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.post_message(BrokerChanged(REDIS))
        pilot.app.post_message(ProcessesChanged(BUSY))
        await pilot.pause()
        await pilot.press("4")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in press:
            await pilot.press(key)
        await pilot.pause()

    return run_before


def test_rows_are_short_and_relative(control: Control) -> None:
    assert schedule_text(repr(schedule(30))) == "every 30s"
    assert schedule_text(repr(crontab(minute="*/5"))) == "cron */5 * * * *"
    assert when(FROZEN + 90, FROZEN).endswith("(in 1m30s)")
    assert when(FROZEN - 86_400 * 2, FROZEN).endswith("ago)")
    rows = {r.name: r for r in map(BeatRow.of, control.beat_entries())}
    assert (rows["heartbeat-30s"].total, rows["heartbeat-30s"].next_run) == (2_913, FROZEN + 18)
    assert rows["cleanup-nightly"].queue == "slow"
    # beat stamps a new entry with its own start time: no runs yet reads "never"
    assert BeatRow.of({"name": "new", "task": "jobs.add", "last_run": NOW, "total_run_count": 0}).last_run is None


@sync
async def test_enter_and_n_run_the_selected_entry(eager_stack, control) -> None:
    RAN.clear()
    app = app_with(eager_stack, control)
    async with app.run_test(size=SIZE) as pilot:
        await on_beat()(pilot)
        names = [r.name for r in app.screen.data.rows]  # sorted by next run
        await on_beat("enter", "down", "n")(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        sent = [SCHEDULE[n]["task"] for n in names[:2]]
        assert [name for name, _args in RAN] == sent
        assert sum("now (task " in str(n.message) for n in app._notifications) == 2


@sync
async def test_run_now_failure_is_a_notice(eager_stack, control) -> None:
    app = app_with(eager_stack, control)
    control.user_app.conf.beat_schedule = {**SCHEDULE, "ghost": {"task": "jobs.ghost", "schedule": 60.0}}
    async with app.run_test(size=SIZE) as pilot:
        await on_beat()(pilot)
        ghost = [r.name for r in app.screen.data.rows].index("ghost")
        await on_beat(*["down"] * ghost, "n")(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("run ghost" in str(n.message) and n.severity == "error" for n in app._notifications)


def test_beat_busy_snapshot(snap_compare, eager_stack, control):
    assert snap_compare(app_with(eager_stack, control), terminal_size=SIZE, run_before=on_beat())


def test_beat_empty_snapshot(snap_compare, eager_stack, control):
    control.user_app.conf.beat_schedule = {}
    assert snap_compare(app_with(eager_stack, control), terminal_size=SIZE, run_before=on_beat())


def test_beat_error_keeps_last_rows_snapshot(snap_compare, eager_stack, control):
    def locked() -> list:  # what the real Control raises for a schedule it cannot read (any other exception
        raise ControlError("schedule file is locked by another beat")  # is the API's "internal error: ...")

    async def run_before(pilot) -> None:
        await on_beat()(pilot)
        control.beat_entries = locked  # the failure injected into the real Control
        pilot.app.screen.poll()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app_with(eager_stack, control), terminal_size=SIZE, run_before=run_before)


def test_beat_without_control_snapshot(snap_compare, eager_stack):
    """In process on purpose: a Stack without a Control object. A panel on the API always has one (its
    RemoteControl); a stack process without it yet answers 503, shown as the schedule's problem."""
    app = in_process_app(serving(eager_stack, control=None))
    assert snap_compare(app, terminal_size=SIZE, run_before=on_beat())


def test_beat_wide_terminal_snapshot(snap_compare, eager_stack, control):
    """At 170 columns the entry, task and args columns take the spare width: long names are whole."""
    long = {"task": "jobs.collect_high_frequency_plugins", "schedule": crontab(minute="*/15"),
            "args": ("rss", "atom", "json-feed")}
    pacific = {"task": "jobs.report", "schedule": zoned_crontab(minute=1, hour=0, zone="America/Los_Angeles"),
               "args": ("youtube",)}  # read on the Pacific clock: the schedule says so (next run: local)
    control.user_app.conf.beat_schedule = {**SCHEDULE, "collect-high-frequency-plugins": long,
                                           "quota-reset-notice": pacific}
    assert snap_compare(app_with(eager_stack, control), terminal_size=(170, 36), run_before=on_beat())


@sync
async def test_a_narrow_terminal_scrolls_to_the_next_run(eager_stack, control) -> None:
    """At 80 columns 'next run' lies past the right edge: → scrolls the table to it (it was hidden)."""
    app = app_with(eager_stack, control)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_beat()(pilot)
        table = app.screen.query_one("#beat-table")
        assert table.max_scroll_x > 0
        await on_beat(*["right"] * 60)(pilot)
        assert table.scroll_x == table.max_scroll_x


def record_sends(control: Control, path: Path) -> None:
    """What the beat child records as it sends: newer than the shelve (written every few minutes)."""
    runs = BeatRuns(path)
    for k in range(3):  # heartbeat-30s: three sends since the shelve's 2,913, the last 4 s ago
        runs.sent("heartbeat-30s", "jobs.add", f"beat-{k}", seed=2_913, at=FROZEN - 64 + 30 * k)
    runs.sent("sync-feeds", "jobs.sync", "now-1", seed=1_280, source=RUN_NOW, at=FROZEN - 20)
    runs.failed("report-hourly", "jobs.report", "Couldn't apply scheduled task report-hourly: Error 111 "
                "connecting to 127.0.0.1:6390.\x1b[2J Connection refused.", seed=77, at=FROZEN - 300)
    control.beat_runs = runs


def test_rows_carry_the_record_of_sends(control: Control, tmp_path: Path) -> None:
    record_sends(control, tmp_path / "beat-runs.sqlite3")
    rows = {r.name: r for r in map(BeatRow.of, control.beat_entries())}
    assert (rows["heartbeat-30s"].total, rows["heartbeat-30s"].last_run) == (2_916, FROZEN - 4)
    assert rows["heartbeat-30s"].next_run == FROZEN + 26 and rows["heartbeat-30s"].error is None
    assert (rows["sync-feeds"].total, rows["sync-feeds"].last_run) == (1_281, FROZEN - 20)
    failed = rows["report-hourly"]
    assert (failed.total, failed.failed_at) == (77, FROZEN - 300)
    assert failed.error is not None and "\x1b" not in failed.error and "\\x1b[2J" in failed.error


def test_beat_recorded_runs_snapshot(snap_compare, eager_stack, control, tmp_path):
    """Runs and last runs as beat sent them (not the shelve's minutes-old counts); a failed send in red,
    and why in the status line."""
    record_sends(control, tmp_path / "beat-runs.sqlite3")
    assert snap_compare(app_with(eager_stack, control), terminal_size=SIZE, run_before=on_beat())
