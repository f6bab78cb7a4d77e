"""Beat entries without processes: declared schedule, history from a copy of beat's shelve and from the
record of what beat sent, next run; the schedulers Stalk does not read."""

from __future__ import annotations

import shelve
import time
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.beat import BeatLazyFunc, PersistentScheduler, ScheduleEntry, Scheduler
from celery.schedules import crontab

from stalk.embedded.control import Control, ControlError
from stalk.embedded.control.beat import beat_entries, describe, foreign_zone, read_schedule_file
from stalk.embedded.control.beat_runs import RUN_NOW, BeatRuns, watch_scheduler

NOW = datetime(2030, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def app():
    app = Celery("beat_unit", set_as_current=False)
    app.conf.update(task_always_eager=True, timezone="UTC", beat_schedule={
        "every-10s": {"task": "t.ping", "schedule": 10.0, "args": (1,)},
        "nightly": {"task": "t.ping", "schedule": crontab(hour=3, minute=30), "kwargs": {"x": 2},
                    "options": {"queue": "slow"}},
    })

    @app.task(name="t.ping", shared=False)  # not added to every app made later in this process
    def ping(*_args, **_kwargs):
        return "pong"

    app.now = lambda: NOW
    return app


def test_entries_with_history_from_the_schedule_file(app, tmp_path):
    path = tmp_path / "beat-schedule"
    with shelve.open(str(path)) as store:
        store["entries"] = {"every-10s": ScheduleEntry("every-10s", "t.ping", NOW - timedelta(seconds=4), 17,
                                                       schedule=10.0, app=app)}
    entries = {e.name: e for e in beat_entries(app, path)}
    tick, nightly = entries["every-10s"], entries["nightly"]
    assert (tick.total_run_count, tick.last_run, tick.schedule) == (17, NOW - timedelta(seconds=4), "every 10 s")
    assert tick.next_run == NOW + timedelta(seconds=6)
    assert (nightly.total_run_count, nightly.last_run, nightly.schedule) == (0, None, "crontab 30 3 * * *")
    assert nightly.next_run == datetime(2030, 1, 2, 3, 30, tzinfo=UTC)
    assert nightly.options == {"queue": "slow"} and nightly.kwargs == {"x": 2}
    assert [e.name for e in beat_entries(app, path)] == ["every-10s", "nightly"]  # soonest first


def test_missing_or_garbage_schedule_file_means_no_history(tmp_path):
    assert read_schedule_file(tmp_path / "absent") == {}
    (tmp_path / "junk").write_bytes(b"\x00not a dbm")
    assert read_schedule_file(tmp_path / "junk") == {}


def test_run_entry_now_and_unknown_entry(app):
    control = Control(app, user_app=app, eager=True)
    assert control.run_beat_entry("nightly").get() == "pong"
    with pytest.raises(ControlError, match=r"beat entry 'nope': not in the app's beat_schedule \(entries: "
                                           r"every-10s, nightly\)"):
        control.run_beat_entry("nope")


def test_a_crontab_on_another_clock_says_which(monkeypatch):
    """`cron 1 0 * * *` read in America/Los_Angeles runs at 08:01 on a UTC machine, where next runs are shown:
    the schedule names the zone (its abbreviation, else its name) whenever the two clocks differ."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        def zone_of(timezone: str) -> str | None:
            zoned = Celery("zoned", set_as_current=False)
            zoned.conf.timezone = timezone
            return foreign_zone(crontab(minute=1, hour=0, app=zoned), datetime(2030, 1, 15, tzinfo=UTC))

        assert zone_of("America/Los_Angeles") == "PST"
        assert zone_of("America/Sao_Paulo") == "America/Sao_Paulo"  # its abbreviation is "-03"
        assert zone_of("UTC") is None and zone_of("Europe/London") is None  # same clock in January
        assert describe(crontab(minute=1, hour=0, app=Celery("utc", set_as_current=False))) == "crontab 1 0 * * *"
    finally:
        monkeypatch.undo()  # TZ as it was (tests/panel/conftest.py sets UTC), then read again
        time.tzset()


# -- what beat really sent: recorded as it sends, merged with the scheduler's own counts -----------------


def test_recorded_sends_merge_with_the_schedule_file(app, tmp_path):
    """The shelve lags (beat writes it every 3 minutes): the record of sends is newer and wins; an entry
    the record has not seen keeps the shelve's count; run now counts; a failed send is kept with its reason."""
    path = tmp_path / "beat-schedule"
    with shelve.open(str(path)) as store:
        store["entries"] = {"every-10s": ScheduleEntry("every-10s", "t.ping", NOW - timedelta(seconds=40), 17,
                                                       schedule=10.0, app=app)}
    runs = BeatRuns(tmp_path / "beat-runs.sqlite3")
    for n in range(3):  # beat's sends since its shelve was written (the first starts from its 17)
        runs.sent("every-10s", "t.ping", f"id-{n}", seed=17, at=(NOW - timedelta(seconds=21 - 10 * n)).timestamp())
    runs.sent("nightly", "t.ping", "id-now", seed=0, source=RUN_NOW, at=(NOW - timedelta(minutes=5)).timestamp())
    runs.failed("nightly", "t.ping", "Couldn't apply scheduled task nightly: broker down",
                at=(NOW - timedelta(minutes=1)).timestamp())
    control = Control(app, user_app=app, eager=True, beat_schedule=path, beat_runs=runs.path)
    entries = {e.name: e for e in control.beat_entries()}
    tick, nightly = entries["every-10s"], entries["nightly"]
    assert (tick.total_run_count, tick.last_run, tick.last_task_id) == (20, NOW - timedelta(seconds=1), "id-2")
    assert tick.next_run == NOW + timedelta(seconds=9) and tick.last_error is None
    assert (nightly.total_run_count, nightly.last_task_id) == (1, "id-now")
    assert nightly.last_run == NOW - timedelta(minutes=5)
    assert nightly.last_error == "Couldn't apply scheduled task nightly: broker down"
    assert nightly.last_error_at == NOW - timedelta(minutes=1)
    assert runs.read()["nightly"].failing and not runs.read()["every-10s"].failing

    result = control.run_beat_entry("every-10s")  # run now: counted, its task id kept
    tick = {e.name: e for e in control.beat_entries()}["every-10s"]
    assert (tick.total_run_count, tick.last_task_id) == (21, result.id)
    assert runs.read()["every-10s"].last_source == RUN_NOW


def test_a_run_now_before_any_record_starts_from_the_schedulers_count(app, tmp_path):
    path = tmp_path / "beat-schedule"
    with shelve.open(str(path)) as store:
        store["entries"] = {"every-10s": ScheduleEntry("every-10s", "t.ping", NOW - timedelta(seconds=4), 17,
                                                       schedule=10.0, app=app)}
    control = Control(app, user_app=app, eager=True, beat_schedule=path, beat_runs=tmp_path / "runs.sqlite3")
    control.run_beat_entry("every-10s")
    assert {e.name: e for e in control.beat_entries()}["every-10s"].total_run_count == 18


def broken() -> int:
    raise RuntimeError("no args today")


def test_the_beat_childs_hook_records_a_real_schedulers_sends(app, tmp_path):
    """watch_scheduler on Celery's own PersistentScheduler: apply_entry (what beat's tick calls) is recorded
    with the task id it sent, starting from the entry's count; a send that fails is recorded with its reason
    and beat goes on (apply_entry logs it, as it always does)."""
    app.conf.beat_schedule = {**app.conf.beat_schedule,
                              "lazy": {"task": "t.ping", "schedule": 60.0, "args": (BeatLazyFunc(broken),)}}
    scheduler = PersistentScheduler(app=app, schedule_filename=str(tmp_path / "beat-schedule"))
    runs = BeatRuns(tmp_path / "beat-runs.sqlite3")
    watch_scheduler(scheduler, runs)
    try:
        entry = scheduler.schedule["every-10s"]
        entry.total_run_count = 5
        scheduler.apply_entry(entry)
        scheduler.apply_entry(scheduler.schedule["lazy"])
    finally:
        scheduler.close()
    seen = runs.read()
    assert (seen["every-10s"].runs, seen["every-10s"].last_source) == (6, "beat")
    assert seen["every-10s"].last_task_id and seen["every-10s"].last_error is None
    assert (seen["lazy"].runs, seen["lazy"].errors, seen["lazy"].failing) == (0, 1, True)
    assert "no args today" in (seen["lazy"].last_error or "")


def test_a_damaged_record_is_moved_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "beat-runs.sqlite3"
    path.write_bytes(b"not a database, not at all" * 100)
    runs = BeatRuns(path)
    assert runs.read() == {}  # unreadable: the schedulers' own counts show
    runs.sent("tick", "t.ping", "id-1")
    assert runs.read()["tick"].runs == 1
    assert [p.name.split(".corrupt-")[0] for p in tmp_path.glob("*.corrupt-*")] == ["beat-runs.sqlite3"]


class OwnScheduler(Scheduler):
    """A scheduler keeping its entries its own way (a database, a service): Stalk cannot list them."""


@pytest.mark.parametrize(("setting", "message"), [
    ("django_celery_beat.schedulers:DatabaseScheduler",
     r"entries: read by django_celery_beat\.schedulers:DatabaseScheduler \(its PeriodicTask table"),
    (OwnScheduler, r"entries: read by tests\.test_control_beat:OwnScheduler, which keeps them its own way"),
    ("nowhere.schedulers:Gone", r"entries: read by nowhere\.schedulers:Gone, which cannot be imported here"),
])
def test_schedulers_stalk_does_not_read_say_so(app, tmp_path, setting, message):
    """No wrong list: one clear line naming the scheduler; run now still sends the app's beat_schedule
    entries (every scheduler sends those) and counts them."""
    app.conf.beat_scheduler = setting
    control = Control(app, user_app=app, eager=True, beat_schedule=tmp_path / "s", beat_runs=tmp_path / "r")
    with pytest.raises(ControlError, match=message):
        control.beat_entries()
    assert control.run_beat_entry("nightly").get() == "pong"
    assert BeatRuns(tmp_path / "r").read()["nightly"].runs == 1


def test_the_plain_scheduler_lists_the_apps_schedule(app):
    app.conf.beat_scheduler = "celery.beat:Scheduler"  # in memory: no history but what was recorded
    assert [e.name for e in beat_entries(app, None)] == ["every-10s", "nightly"]
