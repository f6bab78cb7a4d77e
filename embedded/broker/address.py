"""Where Stalk's own broker listens: a Unix socket in the data dir (only the user can reach it), and the
URLs that name it for kombu/Celery (`redis+socket://`) and for redis-py (`unix://`).

A socket's path is limited to 107 bytes (sockaddr_un); a data dir too deep for that gets its socket in a
fresh 0700 directory under $XDG_RUNTIME_DIR (else the temp dir), recorded in the data dir so that the
next start removes what a killed Stalk left, and removed at stop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from stalk.embedded.safe_files import read_private, write_private

SOCKET_SCHEME = "redis+socket"
MAX_SOCKET_PATH = 107  # bytes: sockaddr_un's sun_path, less its terminating NUL
SOCKET_NAME = "broker.sock"
FALLBACK_RECORD = "socket-dir"  # in the state dir: the fallback directory this data dir's socket is in
FALLBACK_PREFIX = "stalk-sock-"
PIDFILE = "redis.pid"  # in the state dir: written by Stalk's redis-server (the TCP guard's reference)


def socket_path(state_dir: Path, name: str = SOCKET_NAME, record: str = FALLBACK_RECORD) -> Path:
    """The socket `name` for this data dir (the broker's, or another of Stalk's: the API's): in its state
    dir, else in a fallback dir `record` names (see the docstring)."""
    release_fallback(state_dir, record)
    preferred = state_dir / name
    if len(os.fsencode(preferred)) <= MAX_SOCKET_PATH:
        return preferred
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base) or len(os.fsencode(base)) > MAX_SOCKET_PATH - 40:
        base = "/tmp"
    fallback = Path(tempfile.mkdtemp(prefix=FALLBACK_PREFIX, dir=base))  # mode 0700, ours alone
    write_private(state_dir / record, f"{fallback}\n")
    return fallback / name


def release_fallback(state_dir: Path, record_name: str = FALLBACK_RECORD) -> None:
    """Remove the fallback socket dir recorded for this data dir, if any (only one Stalk made: its
    name's prefix, owned by the user, mode 0700)."""
    record = state_dir / record_name
    with contextlib.suppress(OSError, ValueError):
        fallback = Path(read_private(record).strip())
        info = fallback.lstat()
        if fallback.name.startswith(FALLBACK_PREFIX) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0:
            shutil.rmtree(fallback, ignore_errors=True)
    with contextlib.suppress(OSError):
        record.unlink()


def socket_url(path: Path, password: str, db: int, user: str = "") -> str:
    """kombu's and Celery's name for a redis on a Unix socket (the db in `virtual_host`)."""
    creds = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    return f"{SOCKET_SCHEME}://{creds}{quote(str(path))}?virtual_host={db}"


def tcp_url(host: str, port: int, password: str, db: int, user: str = "") -> str:
    return f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"


def is_socket_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(f"{SOCKET_SCHEME}://")


def socket_of(url: str) -> str:
    """The socket's path in a `redis+socket://` URL."""
    return urlsplit(url).path


def redis_py_url(url: str, db: int | None = None) -> str:
    """`url` as redis-py's from_url reads it (on `db` when given): `redis+socket://u:p@/path?virtual_host=N`
    becomes `unix://u:p@/path?db=N`; a redis:// URL keeps its form."""
    parts = urlsplit(url)
    if is_socket_url(url):
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db) if db is not None else query.pop("virtual_host", "0")
        query.pop("virtual_host", None)
        return urlunsplit(parts._replace(scheme="unix", query=urlencode(query)))
    return url if db is None else urlunsplit(parts._replace(path=f"/{db}"))
