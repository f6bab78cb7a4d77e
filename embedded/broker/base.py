"""What every broker mode tells the rest of the stack."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class BrokerError(RuntimeError):
    """The broker cannot start or be reached; the message says why in one line."""


def redact(url: str | None) -> str:
    """`url` with its password replaced by ***, for display and logs."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class BrokerInfo:
    """The active mode, where it is, and what it means for durability."""

    mode: str
    broker_url: str | None
    backend_url: str | None
    durability: str
    port: int | None = None
    pid: int | None = None

    @property
    def display_url(self) -> str:
        return redact(self.broker_url) or "(in process)"
