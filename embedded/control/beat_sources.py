"""Which scheduler beat runs with (`beat_scheduler`), and where the Beat screen reads its entries.

- `celery.beat:PersistentScheduler`, Celery's default, and its subclasses: the app's beat_schedule, each
  entry's last run and count from beat's shelve (read by beat.py, from a copy);
- `redbeat.RedBeatScheduler` (celery-redbeat) and its subclasses: the entries RedBeat keeps in Redis (the
  app's beat_schedule, stored there when beat starts, and any a program saved with
  RedBeatSchedulerEntry(...).save()), with their meta (last run, count);
- `celery.beat:Scheduler`: the app's beat_schedule (it keeps no history);
- `django_celery_beat.schedulers:DatabaseScheduler`: not read here (see DJANGO): a clear
  "entries: read by ..." instead of a list that would miss the entries made in Django's admin;
- any other class keeps its entries its own way: the same "entries: read by ...".

Whatever the scheduler, what beat really sends is recorded by the beat child (beat_runs.py) and merged in."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler, Scheduler
from celery.utils.imports import load_extension_class_names
from kombu.utils.imports import symbol_by_name

from stalk.embedded.broker.address import redis_py_url
from stalk.embedded.control.problems import ControlError

SHELVE, REDIS, DECLARED = "shelve", "redis", "declared"
DJANGO = "django_celery_beat"
# What would be read for django-celery-beat (not installed with Stalk: it needs Django and the project's
# database): after django.setup() with the project's DJANGO_SETTINGS_MODULE, every
# django_celery_beat.models.PeriodicTask row (name, task, args and kwargs as JSON text, queue, exchange,
# routing_key, priority, headers, enabled, last_run_at, total_run_count, and its schedule from the interval,
# crontab, solar or clocked foreign key), as DatabaseScheduler.all_as_schedule() builds them.
DJANGO_READS = "its PeriodicTask table in the project's Django database, which Stalk does not read"


@dataclass(frozen=True)
class Scheduled:
    """An entry as the scheduler keeps it: spec in beat_schedule's shape (task, schedule, args, kwargs,
    options), the scheduler's own last run and count."""

    name: str
    spec: dict[str, Any]
    last_run: datetime | None = None
    runs: int = 0
    enabled: bool = True


def scheduler_setting(app: Celery) -> tuple[str, Any]:
    """(its name as the user would write it, the setting itself: a "module:Class" text, an alias, a class)."""
    setting = app.conf.beat_scheduler or "celery.beat:PersistentScheduler"
    if isinstance(setting, str):
        return setting, setting
    return f"{getattr(setting, '__module__', '?')}:{getattr(setting, '__qualname__', setting)}", setting


@functools.cache
def scheduler_aliases() -> dict[str, str]:
    """Names packages give their schedulers (`-S django`) -> "module:Class", from their entry points (read
    once: no import)."""
    return dict(load_extension_class_names("celery.beat_schedulers"))


def source_of(app: Celery) -> str:
    """SHELVE, REDIS or DECLARED: where the entries of the app's scheduler are read. ControlError
    ("entries: read by <scheduler>") for a scheduler whose entries Stalk does not read."""
    name, setting = scheduler_setting(app)
    aliases = scheduler_aliases()
    target = aliases.get(setting, setting) if isinstance(setting, str) else setting
    if (target if isinstance(target, str) else name).startswith(DJANGO):
        raise ControlError(f"entries: read by {name} ({DJANGO_READS}); beat's sends are still counted")
    try:
        cls = symbol_by_name(target)
    except Exception as exc:
        raise ControlError(f"entries: read by {name}, which cannot be imported here: {exc}") from None
    if not isinstance(cls, type):
        raise ControlError(f"entries: read by {name}, which is not a scheduler class")
    redbeat = sys.modules.get("redbeat.schedulers")
    if redbeat is not None and issubclass(cls, redbeat.RedBeatScheduler):
        return REDIS
    if issubclass(cls, PersistentScheduler):
        return SHELVE
    if cls is Scheduler:
        return DECLARED
    raise ControlError(f"entries: read by {name}, which keeps them its own way (Stalk lists Celery's "
                       "PersistentScheduler and RedBeat); beat's sends are still counted")


def declared(app: Celery) -> dict[str, Scheduled]:
    """The app's beat_schedule (entries without a task are skipped, as beat skips them)."""
    return {name: Scheduled(name, dict(spec)) for name, spec in (app.conf.beat_schedule or {}).items()
            if isinstance(spec, dict) and spec.get("task")}


def redbeat_entries(client: Celery) -> dict[str, Scheduled]:
    """Every entry RedBeat keeps in Redis (its schedule sorted set), read with RedBeat's own code on
    `client`: an app with the user's settings (redbeat_redis_url, redbeat_key_prefix) and Stalk's broker
    (RedBeat's default Redis)."""
    from redbeat import schedulers as redbeat
    from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis

    if not hasattr(client, "redbeat_conf"):  # RedBeat's own fallbacks, said explicitly: RedBeat 2.4 logs a
        settings = {str(k).lower() for k in client.conf}  # deprecation warning for each it takes
        if "redbeat_redis_url" not in settings:
            client.conf.redbeat_redis_url = redis_py_url(str(client.conf.broker_url))
        if "redbeat_redis_options" not in settings:  # inherited broker options reach RedBeat's own only
            inherited = client.conf.broker_transport_options or {}
            own = getattr(redbeat, "REDBEAT_INTERNAL_OPTIONS", ("retry_period", "sentinels", "service_name"))
            client.conf.redbeat_redis_options = {k: v for k, v in inherited.items() if k in own}
    conf = ensure_conf(client)
    out: dict[str, Scheduled] = {}
    for key in get_redis(client).zrange(conf.schedule_key, 0, -1):
        try:
            entry = RedBeatSchedulerEntry.from_key(key, app=client)
        except KeyError:  # removed between the two reads
            continue
        spec = {"task": entry.task, "schedule": entry.schedule, "args": list(entry.args or ()),
                "kwargs": dict(entry.kwargs or {}), "options": dict(entry.options or {})}
        out[entry.name] = Scheduled(entry.name, spec, last_run=entry.last_run_at,
                                    runs=int(getattr(entry, "total_run_count", 0) or 0),
                                    enabled=bool(getattr(entry, "enabled", True)))
    return out
