"""Beat entries without processes: declared schedule, history from a copy of beat's shelve, next run."""

from __future__ import annotations

import shelve
import time
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.beat import ScheduleEntry
from celery.schedules import crontab

from stalk.embedded.control import Control, ControlError
from stalk.embedded.control.beat import beat_entries, describe, foreign_zone, read_schedule_file

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
