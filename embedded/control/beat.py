"""Beat schedule entries: read where the app's scheduler keeps them (beat_sources.py: the app's
beat_schedule with beat's own shelve, RedBeat's Redis), merged with what beat really sent (beat_runs.py:
recorded live by the beat child and by run now), since the shelve is written only every few minutes.

Beat keeps its schedule file open (and dbm may lock it), so we read a copy of it and never touch
the original."""

from __future__ import annotations

import contextlib
import shelve
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import crontab, maybe_schedule, schedule
from celery.utils.time import maybe_make_aware

from stalk.embedded.control import beat_sources
from stalk.embedded.control.beat_runs import BeatRuns, EntryRuns
from stalk.embedded.control.beat_sources import Scheduled
from stalk.embedded.control.problems import BadInput, ControlError


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
    last_task_id: str | None = None  # of the last send that went out (beat's or run now's)
    last_error: str | None = None  # why the last failed send failed (it may be older than last_run)
    last_error_at: datetime | None = None
    enabled: bool = True  # RedBeat entries can be switched off


def beat_entries(app: Celery, schedule_file: Path | None = None, runs: BeatRuns | None = None,
                 client: Celery | None = None) -> list[BeatEntry]:
    """Every entry of the app's scheduler with its last/next run and run count, merged with `runs` (what
    beat sent), sorted by next run. `client`: the app that reaches Stalk's broker (RedBeat reads Redis
    through it). ControlError when the scheduler keeps its entries where Stalk does not read them."""
    scheduled = scheduled_entries(app, schedule_file, client)
    seen = runs.read() if runs is not None else {}
    entries = [_entry(app, s, seen.get(name)) for name, s in scheduled.items()]
    far = datetime.max.replace(tzinfo=app.now().tzinfo)
    return sorted(entries, key=lambda e: (e.next_run or far, e.name))


def scheduled_entries(app: Celery, schedule_file: Path | None = None, client: Celery | None = None,
                      source: str | None = None) -> dict[str, Scheduled]:
    """name -> the entry as the app's scheduler keeps it (see beat_sources)."""
    source = source or beat_sources.source_of(app)
    if source == beat_sources.REDIS:
        return beat_sources.redbeat_entries(client or app)
    declared = beat_sources.declared(app)
    if source == beat_sources.DECLARED or schedule_file is None:
        return declared
    history = read_schedule_file(schedule_file)
    return {name: _with_history(s, history.get(name)) for name, s in declared.items()}


def find_entry(app: Celery, name: str, schedule_file: Path | None = None,
               client: Celery | None = None) -> Scheduled:
    """The entry `name` as the scheduler keeps it. ControlError when there is none."""
    try:
        source = beat_sources.source_of(app)
    except ControlError:  # entries Stalk does not read: those of the app's beat_schedule (every scheduler sends them)
        source = beat_sources.DECLARED
    known = scheduled_entries(app, schedule_file, client, source)
    if name not in known:
        where = "RedBeat's schedule" if source == beat_sources.REDIS else "the app's beat_schedule"
        raise BadInput(f"beat entry {name!r}: not in {where} (entries: {', '.join(sorted(known)) or 'none'})")
    return known[name]


def _with_history(entry: Scheduled, saved: Any) -> Scheduled:
    if saved is None:
        return entry
    return Scheduled(entry.name, entry.spec, last_run=getattr(saved, "last_run_at", None),
                     runs=int(getattr(saved, "total_run_count", 0) or 0))


def _entry(app: Celery, entry: Scheduled, seen: EntryRuns | None) -> BeatEntry:
    spec = entry.spec
    sched = maybe_schedule(spec.get("schedule"), False, app=app)
    zone = app.now().tzinfo
    last, count = entry.last_run, entry.runs
    if last is not None and last.tzinfo is None:
        last = maybe_make_aware(last, zone)
    task_id = error = error_at = None
    if seen is not None:  # beat's own count lags (its shelve is written every few minutes): the larger
        count = max(count, seen.runs)
        if seen.last_run is not None:
            recorded = datetime.fromtimestamp(seen.last_run, UTC).astimezone(zone)
            last = recorded if last is None else max(last, recorded)
        task_id, error = seen.last_task_id, seen.last_error
        if seen.last_error_at is not None:
            error_at = datetime.fromtimestamp(seen.last_error_at, UTC).astimezone(zone)
    return BeatEntry(
        name=entry.name, task=str(spec["task"]), schedule=describe(sched), args=list(spec.get("args") or ()),
        kwargs=dict(spec.get("kwargs") or {}), options=dict(spec.get("options") or {}),
        last_run=last, next_run=next_run(app, sched, last) if entry.enabled else None, total_run_count=count,
        last_task_id=task_id, last_error=error, last_error_at=error_at, enabled=entry.enabled,
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
