"""The demo's periodic tasks (celery beat), as in the seeds."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab


class zoned_crontab(crontab):  # noqa: N801 - reads like crontab
    """A crontab read in a timezone of its own (a quota's reset zone), not the app's."""

    def __init__(self, *args, zone: str = "UTC", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.tz = ZoneInfo(zone)

    def __reduce__(self):  # beat pickles its schedule: keep the zone
        cls, args, kwargs = super().__reduce__()
        return cls, args, {**kwargs, "zone": self.zone}

    def __setstate__(self, state) -> None:
        state = dict(state)
        zone = state.pop("zone", "UTC")
        super().__setstate__(state)
        self.zone, self.tz = zone, ZoneInfo(zone)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} {self.zone}>"


def beat_schedule() -> dict:
    return {
        "health-check": {"task": "demo.health_check", "schedule": timedelta(minutes=5)},
        "collect-high-frequency": {"task": "demo.collect_high_frequency", "schedule": crontab(minute="*/15")},
        "collect-all-hourly": {"task": "demo.collect_all_plugins", "schedule": crontab(minute=0)},
        "process-pending-items": {"task": "demo.process_pending_items", "schedule": crontab(minute="*/30"),
                                  "args": (200,)},
        "cleanup-daily": {"task": "demo.cleanup_old_data", "schedule": crontab(hour=3, minute=0),
                          "kwargs": {"days": 30}},
        "youtube-quota-reset-notice": {"task": "demo.quota_reset_notice", "args": ("youtube",),
                                       "schedule": zoned_crontab(hour=0, minute=1, zone="America/Los_Angeles")},
    }
