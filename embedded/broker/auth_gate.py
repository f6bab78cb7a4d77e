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
# What an unauthenticated client may cost, whatever it sends: a bounded amount of parsing and memory,
# then it is dropped with an error line. The field and bulk limits are redis-server's own for
# unauthenticated clients (networking.c); a real client sends one HELLO or AUTH, at most a few.
MAX_PENDING = 64 * 1024  # bytes of one unfinished request (redis-server's inline limit)
MAX_FIELDS = 10
MAX_BULK = 16 * 1024
MAX_COMMANDS = 16  # requests, blank lines included
MAX_LENGTH_LINE = 32  # bytes of a `*<count>` or `$<size>` line
AUTH_TIMEOUT = 5.0  # seconds from connect to a successful AUTH


class ProtocolError(ValueError):
    """The bytes are not a redis request (or cost too much before AUTH): the connection is closed."""


def parse_command(buf: bytes | bytearray, pos: int = 0) -> tuple[list[bytes] | None, int]:
    """One request (RESP array of bulk strings, or an inline line) in `buf` from offset `pos`: (fields,
    the offset after it), or (None, pos) while it is incomplete. Only the fields are copied, never the
    rest of the buffer, so parsing a buffer of many requests is linear."""
    if not buf.startswith(b"*", pos):
        end = buf.find(b"\n", pos)
        return (None, pos) if end < 0 else ([bytes(f) for f in buf[pos:end].split()], end + 1)
    end = _line_end(buf, pos)
    if end < 0:
        return None, pos
    count, at = _int(buf[pos + 1:end], MAX_FIELDS, "multibulk length"), end + 2
    fields = []
    for _ in range(count):
        end = _line_end(buf, at)
        if end < 0:
            return None, pos
        if not buf.startswith(b"$", at):
            raise ProtocolError("expected '$'")
        size, start = _int(buf[at + 1:end], MAX_BULK, "bulk length"), end + 2
        if len(buf) < start + size + 2:
            return None, pos
        fields.append(bytes(buf[start:start + size]))
        at = start + size + 2
    return fields, at


def _line_end(buf: bytes | bytearray, pos: int) -> int:
    """The offset of the CRLF that ends the length line at `pos`, or -1 while it has not arrived."""
    end = buf.find(b"\r\n", pos, pos + MAX_LENGTH_LINE)
    if end < 0 and len(buf) >= pos + MAX_LENGTH_LINE:
        raise ProtocolError("too big length line")
    return end


def _int(raw: bytes | bytearray, limit: int, what: str) -> int:
    if not raw.isdigit():
        raise ProtocolError(f"invalid {what}")
    value = int(raw)
    if value > limit:
        raise ProtocolError(f"unauthenticated {what}")
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
        self._pending = bytearray()
        self._commands = 0
        self.open = False

    def feed(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Take client bytes while closed: (reply to the client, bytes for fakeredis, close the connection).

        Bytes that follow the command that opened the gate are returned for fakeredis as they are. A client
        that breaks the protocol or the limits above gets an error line, then the connection closes."""
        self._pending += data
        replies: list[bytes] = []
        try:
            forward, close = self._run(replies)
        except ProtocolError as exc:
            replies.append(b"-ERR Protocol error: %s\r\n" % str(exc).encode())
            return b"".join(replies), b"", True
        return b"".join(replies), forward, close

    def _run(self, replies: list[bytes]) -> tuple[bytes, bool]:
        """Judge each whole request in the buffer, by offset; (bytes for fakeredis, close)."""
        pos = 0
        while not self.open:
            fields, end = parse_command(self._pending, pos)
            if fields is None:
                break
            pos, self._commands = end, self._commands + 1
            if self._commands > MAX_COMMANDS:
                raise ProtocolError("too many commands before AUTH")
            verdict = self.judge(fields)
            replies.append(verdict.reply)
            if verdict.close:
                return b"", True
            if verdict.opened:
                self.open = True
                forward, self._pending = verdict.forward + self._pending[pos:], bytearray()
                return forward, False
        del self._pending[:pos]
        if len(self._pending) > MAX_PENDING:
            raise ProtocolError("unauthenticated request too large")
        return b"", False

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
