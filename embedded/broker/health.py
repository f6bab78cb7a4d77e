"""Is the broker reachable now? One bounded probe, worded for a person."""

from __future__ import annotations

from celery import Celery


def broker_problem(app: Celery) -> str | None:
    """None when `app`'s broker answers; otherwise one line saying why not."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:  # any transport error means "not reachable now"
        return f"broker unreachable ({type(exc).__name__}: {str(exc)[:120]})"
    return None
