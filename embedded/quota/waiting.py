"""Waiting for a quota reset without being run twice. Redis redelivers an unacked ETA message once the
broker's visibility timeout passes (kombu#337), so a retry whose ETA is further away runs several
times. A priority call therefore waits in steps of at most half the visibility timeout; a waiting step
touches no ledger (nothing charged, no denial) and does not count as a failed attempt.

Two message headers carry the wait across retries: the instant waited for and the waits so far."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

WAIT_UNTIL = "stalk_wait_until"
WAITS = "stalk_waits"
DEFAULT_VISIBILITY = 3600.0
EARLY = timedelta(seconds=1)  # a timer firing a little early has reached the reset


def visibility_timeout(app: Any) -> float:
    """app.conf.broker_transport_options["visibility_timeout"] (kombu's default: 3600 s)."""
    options = app.conf.broker_transport_options or {}
    try:
        value = float(options.get("visibility_timeout", DEFAULT_VISIBILITY))
    except (TypeError, ValueError):
        return DEFAULT_VISIBILITY
    return value if value > 0 else DEFAULT_VISIBILITY


def next_wake(now: datetime, until: datetime, visibility: float) -> datetime:
    """`until`, or half the visibility timeout from now when that comes first."""
    return min(until, now + timedelta(seconds=visibility / 2))


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)  # in a worker, custom headers are request attributes
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)  # task.apply() keeps them here
    return value


def waits(request: Any) -> int:
    try:
        return max(int(_header(request, WAITS) or 0), 0)
    except (TypeError, ValueError):
        return 0


def waiting_until(request: Any, now: datetime | None = None) -> datetime | None:
    """The reset this run still waits for, or None when there is none or it has been reached."""
    raw = _header(request, WAIT_UNTIL)
    try:
        until = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    if until is None or until.tzinfo is None:
        return None
    return until if until - EARLY > (now or datetime.now(UTC)) else None


def wait(task: Any, until: datetime, exc: BaseException | None) -> Any:
    """The Retry that runs `task` again at `until` or at the next step towards it. The retry limit is
    raised by one, so waiting never exhausts it."""
    request = task.request
    eta = next_wake(datetime.now(UTC), until, visibility_timeout(task.app))
    headers = {WAIT_UNTIL: until.isoformat(), WAITS: waits(request) + 1}
    return task.retry(exc=exc, eta=eta, max_retries=request.retries + 1, headers=headers)


def failed_attempts(request: Any) -> int:
    """Retries so far that were failed attempts (not waiting steps)."""
    return max((request.retries or 0) - waits(request), 0)


def retry_failed(task: Any, exc: BaseException, countdown: float, max_retries: int) -> Any:
    """The Retry for a failed attempt: at most `max_retries` of them, however many waiting steps came
    before."""
    n = waits(task.request)
    return task.retry(exc=exc, countdown=countdown, max_retries=max_retries + n, headers={WAITS: n})
