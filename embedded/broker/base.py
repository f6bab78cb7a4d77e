"""What every broker mode tells the rest of the stack."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class BrokerError(RuntimeError):
    """The broker cannot start or be reached; the message says why in one line."""


SECRET_QUERY = re.compile(r"((?:^|[?&;])[^=&;#?]*(?:pass|secret|token|auth)[^=&;#?]*=)([^&;#]*)", re.I)
USERINFO_BREAKS = "#?/"  # a password holding one of these must be percent-encoded, else it is no password


def redact(url: str | None) -> str:
    """`url` with its passwords replaced by ***, for display and logs: the userinfo's (however odd: a raw
    `#`, `?` or `/` in it, an IPv6 host, a port out of range) and a query's (`?password=`), in every URL of
    a failover list (`;`). Never raises; when unsure, more is masked, not less."""
    if not url:
        return ""
    masked = SECRET_QUERY.sub(lambda m: m.group(1) + "***", url)
    return ";".join(_redact_userinfo(part) for part in masked.split(";"))


def _redact_userinfo(part: str) -> str:
    scheme, sep, rest = part.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return part
    user, colon, _password = rest[:at].partition(":")
    return f"{scheme}://{user}:***@{rest[at + 1:]}" if colon else part


def redact_text(text: str, url: str | None) -> str:
    """`text` (an error that may quote `url` or its password) with the URL's passwords masked."""
    if not url:
        return text
    text = text.replace(url, redact(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> set[str]:
    found = {m.group(2) for m in SECRET_QUERY.finditer(url)}
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        at = rest.rfind("@")
        if sep and at >= 0 and ":" in rest[:at]:
            found.add(rest[:at].partition(":")[2])
    found |= {unquote(s) for s in found}
    return {s for s in found if len(s) >= 3}  # a 1-2 character "password" would mask half the message


def url_problem(url: str) -> str | None:
    """Why kombu cannot use `url` as it is written (one line, password masked), or None."""
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        if not sep:
            continue
        end = min((i for i in (rest.find(c) for c in USERINFO_BREAKS) if i >= 0), default=len(rest))
        at = rest.rfind("@")
        if at > end and ":" in rest[:at] and "@" not in rest[:end]:
            return (f"broker URL {redact(url)}: its password holds a '#', '?' or '/': percent-encode it "
                    "(%23, %3F, %2F)")
        hostport = rest[at + 1:] if 0 <= at < end else rest
        hostport = hostport[:min((i for i in (hostport.find(c) for c in USERINFO_BREAKS) if i >= 0),
                                 default=len(hostport))]
        if not _port_ok(hostport):
            return f"URL {redact(url)}: the port must be a number from 0 to 65535"
    return None


def _port_ok(hostport: str) -> bool:
    try:
        return isinstance(urlsplit(f"//{hostport}").port, int | None)  # .port raises on a bad port
    except ValueError:
        return False


@dataclass(frozen=True)
class BrokerInfo:
    """The active mode, where it is, and what it means for durability."""

    mode: str
    broker_url: str | None
    backend_url: str | None
    durability: str
    port: int | None = None  # loopback TCP; None on a Unix socket
    pid: int | None = None
    socket: str | None = None  # the Unix socket's path (Stalk's own broker, unless TCP was asked for)

    @property
    def display_url(self) -> str:
        return redact(self.broker_url) or "(in process)"
