"""Beat schedule entries: declared in the app's beat_schedule, run history from beat's own shelve.

Beat keeps its schedule file open (and dbm may lock it), so we read a copy of it and never touch
the original."""

from __future__ import annotations

import contextlib
import shelve
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import crontab, maybe_schedule, schedule

from stalk.embedded.control.problems import ControlError


@dataclass(frozen=True)
class BeatEntry:
    name: str
    task: str
    schedule: str  # human text: "every 10 s", "crontab */5 * * * *"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    last_run: datetime | None = None
    next_run: datetime | None = None
    total_run_count: int = 0


def beat_entries(app: Celery, schedule_file: Path | None = None) -> list[BeatEntry]:
    """Every entry of app.conf.beat_schedule with its last/next run, sorted by next run."""
    declared = app.conf.beat_schedule or {}
    history = read_schedule_file(schedule_file) if schedule_file else {}
    entries = [_entry(app, name, spec, history.get(name)) for name, spec in declared.items()
               if isinstance(spec, dict) and spec.get("task")]
    far = datetime.max.replace(tzinfo=app.now().tzinfo)
    return sorted(entries, key=lambda e: (e.next_run or far, e.name))


def find_entry(app: Celery, name: str) -> dict[str, Any]:
    spec = (app.conf.beat_schedule or {}).get(name)
    if not isinstance(spec, dict) or not spec.get("task"):
        known = ", ".join(sorted(app.conf.beat_schedule or {})) or "none"
        raise ControlError(f"beat entry {name!r}: not in the app's beat_schedule (entries: {known})")
    return spec


def _entry(app: Celery, name: str, spec: dict[str, Any], saved: Any) -> BeatEntry:
    sched = maybe_schedule(spec.get("schedule"), False, app=app)
    last = getattr(saved, "last_run_at", None)
    count = int(getattr(saved, "total_run_count", 0) or 0)
    return BeatEntry(
        name=name, task=spec["task"], schedule=describe(sched), args=list(spec.get("args") or ()),
        kwargs=dict(spec.get("kwargs") or {}), options=dict(spec.get("options") or {}),
        last_run=last, next_run=next_run(app, sched, last), total_run_count=count,
    )


def next_run(app: Celery, sched: Any, last_run: datetime | None) -> datetime | None:
    """When beat will send it next: the schedule's own estimate from the last run (or from now)."""
    before = app.now()
    try:
        remaining = sched.remaining_estimate(last_run or before)
    except Exception:
        return None
    if not isinstance(remaining, timedelta):
        return None
    drift = app.now() - before  # the schedule read its own "now" somewhere in between
    when = before + max(remaining, timedelta(0))
    whole = (when + timedelta(microseconds=500_000)).replace(microsecond=0)
    return whole if abs(whole - when) <= drift + timedelta(milliseconds=1) else when


def describe(sched: Any) -> str:
    if isinstance(sched, crontab):
        fields = (sched._orig_minute, sched._orig_hour, sched._orig_day_of_month,
                  sched._orig_month_of_year, sched._orig_day_of_week)
        zone = foreign_zone(sched)
        return "crontab " + " ".join(str(f) for f in fields) + (f" {zone}" if zone else "")
    if isinstance(sched, schedule):
        seconds = sched.run_every.total_seconds()
        return f"every {seconds:g} s" if seconds < 120 else f"every {seconds / 60:g} min"
    return str(sched)


def foreign_zone(sched: crontab, now: datetime | None = None) -> str | None:
    """The zone a crontab is read in (the app's timezone, or the schedule's own) when its clock differs
    from this machine's now: `0 0 * * *` in America/Los_Angeles runs at 08:00 UTC, and next-run times are
    shown in local time."""
    try:
        zone = sched.tz
        moment = now or sched.now()  # the app's clock (frozen in tests)
    except Exception:  # no app bound: read in the machine's time
        return None
    there = moment.astimezone(zone) if zone is not None else None
    if there is None or there.utcoffset() == moment.astimezone().utcoffset():
        return None
    short = there.tzname() or ""
    return short if short.isalpha() else str(getattr(zone, "key", zone))  # PST, not America/Los_Angeles


def read_schedule_file(path: Path) -> dict[str, Any]:
    """name -> saved ScheduleEntry, from a copy of beat's shelve; {} when missing or unreadable."""
    path = Path(path)
    files = [p for p in path.parent.glob(f"{path.name}*") if p.is_file()] if path.parent.exists() else []
    if not files:
        return {}
    with tempfile.TemporaryDirectory(prefix="stalk-beat-") as tmp:
        for f in files:
            with contextlib.suppress(OSError):
                shutil.copyfile(f, Path(tmp) / f.name)
        try:
            with shelve.open(str(Path(tmp) / path.name), flag="r") as store:
                entries = store.get("entries") or {}
                return dict(entries) if isinstance(entries, dict) else {}
        except Exception:  # being written, another dbm flavour, or not a schedule: no history
            return {}
