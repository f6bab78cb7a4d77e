"""Where a stack's API is reached: its token (0600 file) and its Unix socket, both in the state dir."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
from pathlib import Path

from stalk.embedded.safe_files import read_private, write_private

TOKEN_FILE = "api.token"
SOCKET_NAME = "api.sock"
MAX_SOCKET_PATH = 107  # bytes: sockaddr_un's sun_path, less its terminating NUL
FALLBACK_RECORD = "api-socket-dir"
FALLBACK_PREFIX = "stalk-api-"


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def load_or_create_token(state_dir: Path) -> str:
    """The API token of this data dir: kept across restarts so scripts keep working (mode 0600)."""
    path = token_path(state_dir)
    try:
        value = read_private(path).strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    value = secrets.token_urlsafe(32)
    write_private(path, value + "\n")
    return value


def read_token(state_dir: Path) -> str | None:
    """The token a client presents (None when the stack never made one, or the file is not the user's)."""
    try:
        return read_private(token_path(state_dir)).strip() or None
    except (OSError, ValueError):
        return None


def socket_path(state_dir: Path) -> Path:
    """The API socket: in the state dir, else (a data dir too deep for sockaddr_un) in a fresh 0700 dir
    recorded in the state dir, removed at the next start."""
    release_fallback(state_dir)
    preferred = state_dir / SOCKET_NAME
    if len(os.fsencode(preferred)) <= MAX_SOCKET_PATH:
        return preferred
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base) or len(os.fsencode(base)) > MAX_SOCKET_PATH - 40:
        base = "/tmp"
    fallback = Path(tempfile.mkdtemp(prefix=FALLBACK_PREFIX, dir=base))
    write_private(state_dir / FALLBACK_RECORD, f"{fallback}\n")
    return fallback / SOCKET_NAME


def release_fallback(state_dir: Path) -> None:
    record = state_dir / FALLBACK_RECORD
    with contextlib.suppress(OSError, ValueError):
        fallback = Path(read_private(record).strip())
        info = fallback.lstat()
        if fallback.name.startswith(FALLBACK_PREFIX) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0:
            for entry in fallback.iterdir():
                entry.unlink()
            fallback.rmdir()
    with contextlib.suppress(OSError):
        record.unlink()


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


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket (OSError, e.g. the port is taken, for the caller to word)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock
