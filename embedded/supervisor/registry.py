"""The data dir's lock, pid file and children file: one Stalk per data dir, no leftovers from a crash."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
from pathlib import Path

import psutil

from stalk.embedded.safe_files import open_private, read_private, write_private


class StackLockedError(RuntimeError):
    """Another Stalk already runs on this data dir."""


class InstanceLock:
    """An flock on `<data_dir>/stalk.lock`, released by the kernel even if Stalk is SIGKILLed."""

    def __init__(self, lock_file: Path, pid_file: Path) -> None:
        self.lock_file = lock_file
        self.pid_file = pid_file
        self._fd: int | None = None

    def acquire(self) -> None:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = open_private(self.lock_file, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self._read_pid()
            who = f" (pid {owner})" if owner else ""
            raise StackLockedError(
                f"another Stalk{who} is already running on data dir {self.lock_file.parent}; "
                "stop it, or give this one its own --data-dir"
            ) from None
        self._fd = fd
        write_private(self.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        if self._fd is None:
            return
        self.pid_file.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _read_pid(self) -> int | None:
        try:
            return int(read_private(self.pid_file).strip())
        except (OSError, ValueError):
            return None


class ChildRegistry:
    """pids (with start times) of live children, so the next start can end any a crash left behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, float]] = {}

    def add(self, name: str, pid: int) -> None:
        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        with self._lock:
            self._entries[name] = {"pid": pid, "create_time": created}
            self._write()

    def remove(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is not None:
                self._write()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        write_private(self.path, json.dumps(self._entries))

    def clean_stale(self) -> list[int]:
        """Kill the process groups a crashed run left behind; returns the pids that were still alive.
        Only a pid whose start time is the one recorded: any other process may have its pid now."""
        try:
            entries = json.loads(read_private(self.path))
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        killed = []
        for entry in entries.values():
            pid, created = _recorded(entry)
            if pid > 0 and created is not None and _same_process(pid, created):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        continue
                killed.append(pid)
        self.path.unlink(missing_ok=True)
        return killed


def _recorded(entry: object) -> tuple[int, float | None]:
    """(pid, start time) of a children-file entry; (0, None) for anything else."""
    if not isinstance(entry, dict):
        return 0, None
    try:
        created = entry.get("create_time")
        return int(entry.get("pid", 0)), float(created) if created is not None else None
    except (TypeError, ValueError, OverflowError):
        return 0, None


def _same_process(pid: int, create_time: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - create_time) < 0.01
    except psutil.Error:
        return False
