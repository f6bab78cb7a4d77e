"""Attaching to a broker Stalk does not run: check it answers before anything starts."""

from __future__ import annotations

from kombu import Connection

from stalk.embedded.broker.base import BrokerError, redact, redact_text


def check_external(url: str, timeout: float = 3.0) -> None:
    """Raise BrokerError (one line) if the broker at `url` cannot be reached or refuses us."""
    try:
        with Connection(url, connect_timeout=timeout, transport_options={"max_retries": 0}) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific errors
        raise BrokerError(f"cannot reach broker {redact(url)}: {type(exc).__name__}: "
                          f"{redact_text(str(exc), url)}") from None
