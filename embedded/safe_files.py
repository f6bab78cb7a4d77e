"""Files in the data dir, written so that nothing planted there redirects them (issue #26).

Another local user who can write into a data dir could plant a symlink where Stalk writes (its redis
config, status or pid file, a log) and have Stalk overwrite or append to a file of the user's, or leave
a `broker.password` of their choosing. So before a stack starts, `secure_data_dir` refuses a data dir (or
a dir inside it) that is not the user's or sits in a dir others can write into (without /tmp's sticky
bit), takes group/other access away from one that is the user's (saying so), and refuses any symlink or
other user's file inside it. The writes themselves never follow a link either: whole files are written
to a fresh temp file (mkstemp) and renamed over the name, appends open with O_NOFOLLOW, and SQLite files
(SQLite follows links) are checked before they are opened. A running stack's umask is PRIVATE_UMASK, so
what it and its children create (redis-server's AOF, Celery's statedb and beat schedule) is 0600/0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from stalk.embedded.config import ConfigError
from stalk.embedded.paths import StackPaths

PRIVATE_UMASK = 0o077  # every file and dir the stack creates: 0600 / 0700
WALKED = ("logs", "state", "redis")  # the data dir's own subdirs, checked entry by entry
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class UnsafeDataDir(ConfigError):
    """A data dir (or a file in it) another user could have chosen: refused, one line for the user."""


def secure_data_dir(paths: StackPaths) -> list[str]:
    """Create the data dir and its subdirs (0700) and check them and what they hold (see the module
    docstring); the notes for the user (a mode that was fixed). UnsafeDataDir when something is not safe."""
    notes: list[str] = []
    data_dir = paths.data_dir
    data_dir.absolute().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_parent(data_dir)
    _make_dir(data_dir)
    secure_dir(data_dir, notes, follow=True)
    check_entries(data_dir)
    for name in WALKED:
        _make_dir(data_dir / name)
        secure_dir(data_dir / name, notes)
        for root, dirs, _files in os.walk(data_dir / name):
            for d in dirs:
                secure_dir(Path(root) / d, notes)
            check_entries(Path(root))
    return notes


def _make_dir(path: Path) -> None:
    if not os.path.lexists(path):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _check_parent(data_dir: Path) -> None:
    """Refuse a data dir whose parent another user could rename it out of (writable, without the sticky
    bit /tmp has): they could put a dir of their own in its place while Stalk runs."""
    for parent in dict.fromkeys((data_dir.absolute().parent, data_dir.resolve().parent)):
        st = os.stat(parent)
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise UnsafeDataDir(f"refusing data dir: {data_dir} is in {parent}, which other users can write "
                                f"into (mode {stat.S_IMODE(st.st_mode):04o}): use a data dir elsewhere")


def secure_dir(path: Path, notes: list[str], follow: bool = False) -> None:
    """Refuse the dir `path` when it is a link (unless `follow`: the data dir itself may be one the user
    made) or not the user's; take group/other access away from the user's own (and say so)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # gone while we looked (a temp dir of redis-server's): nothing to check
        return
    if stat.S_ISLNK(st.st_mode):
        if not follow or st.st_uid != os.geteuid():
            raise UnsafeDataDir(f"refusing data dir: {path} is a symbolic link (to {os.readlink(path)}); "
                                "Stalk does not follow links inside its data dir: remove it")
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDataDir(f"refusing data dir: {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise UnsafeDataDir(f"refusing data dir: {path} belongs to {_owner(st.st_uid)}, not to you: another user "
                            "could read the broker's password or plant files there; use a data dir of your own")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
        if stat.S_IMODE(os.stat(path).st_mode) & 0o022:  # a filesystem without modes (vfat, some mounts)
            raise UnsafeDataDir(f"refusing data dir: {path} is writable by other users (mode {mode:04o}) and its "
                                "mode cannot be changed there: use a data dir on another filesystem")
        writable = " (writable by other users)" if mode & 0o022 else ""
        notes.append(f"[stalk] {path} was mode {mode:04o}{writable}: set to 0700")


def check_entries(directory: Path) -> None:
    """Refuse a symlink, or an entry that is not the user's, directly in `directory`."""
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone while we looked
                continue
            check_path(Path(entry.path), st)


def check_path(path: Path, st: os.stat_result | None = None) -> None:
    """UnsafeDataDir when `path` is a symlink or not the user's (nothing there: fine)."""
    if st is None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeDataDir(f"refusing data dir: {path} is a symbolic link (to {os.readlink(path)}), and Stalk "
                            "writes there itself: remove it (someone may have planted it)")
    if st.st_uid != os.geteuid():
        raise UnsafeDataDir(f"refusing data dir: {path} belongs to {_owner(st.st_uid)}, not to you: remove it "
                            "(another user may have planted it)")


def prepare_sqlite(path: Path) -> None:
    """Before SQLite opens `path` to write: refuse a link or another user's file there (SQLite follows
    links, for its -wal and -shm files too), and create a missing db 0600 whatever the umask (a command
    run outside a stack has the user's), which its -wal and -shm files then copy."""
    for suffix in SQLITE_SIDE_FILES:
        check_path(Path(f"{path}{suffix}"))
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))


def write_private(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` (mode 0600) atomically: a temp file in the same dir, renamed over the
    name, so a symlink or another file planted at `path` (or at a fixed temp name) is replaced, never
    written through."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_private(path: Path) -> str:
    """The text of the user's own file `path` (mode set to 0600), never through a link: OSError (ELOOP)
    on a link, UnsafeDataDir on another user's file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise UnsafeDataDir(f"refusing {path}: it belongs to {_owner(st.st_uid)}, not to you; another user may "
                                "have chosen it: remove it")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeDataDir(f"refusing {path}: not a regular file: remove it")
        os.fchmod(fd, 0o600)
        return f.read().decode()


def open_private(path: Path, flags: int) -> int:
    """os.open for a file of Stalk's own (created 0600), never through a link; refuses a file that is not
    the user's or has other names (a hard link to a file elsewhere)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)  # NONBLOCK: a planted fifo
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_nlink > 1 or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(f"refusing {path}: not a file of yours with one name (planted?)")
    return fd


def open_append(path: Path) -> int:
    """An fd appending to `path` (created 0600), never through a link (see open_private)."""
    return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"
