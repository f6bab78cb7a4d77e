"""Where a stack's API is reached: its token (0600 file) and its Unix socket, both in the state dir."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from stalk.embedded.broker import address
from stalk.embedded.safe_files import read_private
from stalk.embedded.secrets import load_or_create_secret

TOKEN_FILE = "api.token"
SOCKET_NAME = "api.sock"
FALLBACK_RECORD = "api-socket-dir"


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def load_or_create_token(state_dir: Path) -> str:
    """The API token of this data dir: kept across restarts so scripts keep working (mode 0600)."""
    return load_or_create_secret(token_path(state_dir), 32)


def read_token(state_dir: Path) -> str | None:
    """The token a client presents (None when the stack never made one, or the file is not the user's)."""
    try:
        return read_private(token_path(state_dir)).strip() or None
    except (OSError, ValueError):
        return None


def socket_path(state_dir: Path) -> Path:
    """The API socket: in the state dir, else (a data dir too deep for sockaddr_un) in a fresh 0700 dir
    recorded in the state dir, removed at the next start (as the broker's: broker/address.py)."""
    return address.socket_path(state_dir, SOCKET_NAME, FALLBACK_RECORD)


def release_fallback(state_dir: Path) -> None:
    address.release_fallback(state_dir, FALLBACK_RECORD)


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at `path`, mode 0600 before anyone can connect (bound under umask 077)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def bind_tcp(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket (OSError, e.g. the port is taken, for the caller to word), made with proto
    IPPROTO_TCP: asyncio sets TCP_NODELAY only on connections accepted from such a socket
    (base_events._set_nodelay checks sock.proto); without it every keep-alive response waits ~40 ms on
    Nagle and the client's delayed ACK (45 ms against 1.6 ms a request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
