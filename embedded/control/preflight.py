"""A send that fails fast and definitely: before publishing, check the broker answers on a fresh connection
with socket timeouts (the stack's own publisher has none: a stopped broker would hold it, and what it wrote
would go out once the broker resumes, long after the caller was told "not sent")."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

from stalk.embedded.broker.base import redact, redact_text
from stalk.embedded.control.client import COMMAND_RETRIES, COMMAND_TIMEOUT
from stalk.embedded.control.problems import ControlError


def broker_check(app: Celery, timeout: float = COMMAND_TIMEOUT) -> Callable[[], None]:
    """A callable raising ControlError ("broker URL unreachable: why") unless `app`'s broker answers within
    about `timeout` seconds; nothing is written to the broker."""

    def check() -> None:
        url = str(app.conf.broker_write_url or app.conf.broker_url or "")
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout} if url.startswith("redis") else {}
        try:
            with app.connection_for_write(connect_timeout=timeout, transport_options=options) as conn:
                conn.ensure_connection(max_retries=COMMAND_RETRIES, interval_start=0, interval_step=0.2,
                                       interval_max=0.2, timeout=timeout)
        except Exception as exc:  # any transport error: not reachable now
            reason = " ".join(redact_text(str(exc), url).split()) or type(exc).__name__
            raise ControlError(f"broker {redact(url)} unreachable: {reason}") from None

    return check
