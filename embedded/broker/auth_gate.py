"""requirepass for the embedded broker: what a connection may do before it has authenticated.

fakeredis checks a password only when a client sends AUTH; it serves every other command to anyone.
Each connection therefore starts behind this gate, which parses the client's first commands itself
and answers them as redis-server does with `requirepass` set: AUTH and HELLO ... AUTH with the right
password open the gate (and are passed on, so fakeredis answers them in the protocol asked for),
a wrong password gets WRONGPASS, anything else NOAUTH. Once open, bytes go straight to fakeredis.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

NOAUTH = b"-NOAUTH Authentication required.\r\n"
NOAUTH_HELLO = (b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                b"<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
                b"RESP protocol version at the same time\r\n")
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
MAX_PENDING = 1 << 20  # bytes an unauthenticated client may leave unparsed before it is dropped


class ProtocolError(ValueError):
    """The bytes are not a redis request: the connection is closed."""


def parse_command(buf: bytes) -> tuple[list[bytes] | None, bytes]:
    """One request (RESP array of bulk strings, or an inline line) from `buf`: (fields, rest),
    or (None, buf) while it is incomplete."""
    if not buf.startswith(b"*"):
        end = buf.find(b"\n")
        return (None, buf) if end < 0 else (buf[:end].split(), buf[end + 1:])
    end = buf.find(b"\r\n")
    if end < 0:
        return None, buf
    count, pos = _int(buf[1:end]), end + 2
    fields = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None, buf
        if buf[pos:pos + 1] != b"$":
            raise ProtocolError("expected a bulk string")
        size, start = _int(buf[pos + 1:end]), end + 2
        if len(buf) < start + size + 2:
            return None, buf
        fields.append(buf[start:start + size])
        pos = start + size + 2
    return fields, buf[pos:]


def _int(raw: bytes) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError(f"bad length {raw[:20]!r}") from None
    if not 0 <= value <= 512 * 1024 * 1024:
        raise ProtocolError(f"bad length {value}")
    return value


def encode_command(fields: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(fields) + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)


@dataclass
class Verdict:
    """What to do with one pre-auth command: send `reply` to the client, or pass it on (`forward`)."""

    reply: bytes = b""
    forward: bytes = b""
    opened: bool = False
    close: bool = False


class AuthGate:
    """Per-connection state: closed until the client proves it knows `password`."""

    def __init__(self, password: bytes) -> None:
        self._password = password
        self._pending = b""
        self.open = False

    def feed(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Take client bytes while closed: (reply to the client, bytes for fakeredis, close the connection).

        Bytes that follow the command that opened the gate are returned for fakeredis as they are."""
        self._pending += data
        replies, forward = [], b""
        while not self.open:
            fields, self._pending = parse_command(self._pending)
            if fields is None:
                if len(self._pending) > MAX_PENDING:
                    raise ProtocolError("unauthenticated request too large")
                break
            verdict = self.judge(fields)
            replies.append(verdict.reply)
            forward += verdict.forward
            if verdict.close:
                return b"".join(replies), b"", True
            self.open = verdict.opened
        if self.open:
            forward, self._pending = forward + self._pending, b""
        return b"".join(replies), forward, False

    def judge(self, fields: list[bytes]) -> Verdict:
        name = fields[0].upper() if fields else b""
        if name == b"AUTH":
            return self._auth(fields, fields[1:])
        if name == b"HELLO":
            upper = [f.upper() for f in fields]
            if b"AUTH" not in upper:
                return Verdict(reply=NOAUTH_HELLO)
            at = upper.index(b"AUTH")
            return self._auth(fields, fields[at + 1:at + 3], need_user=True)
        if name == b"QUIT":
            return Verdict(reply=b"+OK\r\n", close=True)
        if not fields:
            return Verdict()
        return Verdict(reply=NOAUTH)

    def _auth(self, fields: list[bytes], creds: list[bytes], need_user: bool = False) -> Verdict:
        if len(creds) not in ((2,) if need_user else (1, 2)):
            return Verdict(reply=b"-ERR wrong number of arguments for '%s' command\r\n" % fields[0].lower())
        user, password = (b"default", creds[0]) if len(creds) == 1 else creds
        if user == b"default" and hmac.compare_digest(password, self._password):
            return Verdict(forward=encode_command(fields), opened=True)
        return Verdict(reply=WRONGPASS)
