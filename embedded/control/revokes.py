"""Stalk's own revoke store: revokes survive every worker being down (Celery forgets them: celery#8888).

A JSON file in the stack's state dir (mode 0600), written atomically under an flock so the panel,
the CLI and worker children can share it. Workers load it before consuming (children.run_worker);
the stack re-broadcasts it when a worker comes (back) online."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from stalk.embedded.paths import set_aside
from stalk.embedded.safe_files import open_private, write_private

MAX_ENTRIES = 10_000
MAX_AGE = 7 * 24 * 3600.0  # a week: older revokes are dropped from the store
log = logging.getLogger("stalk.control")


def revoke_store_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "state" / "revoked.json"


@dataclass(frozen=True)
class RevokeEntry:
    task_id: str
    revoked_at: float
    terminate: bool = False
    signal: str = "SIGTERM"


class RevokeStore:
    """Revoked task ids, persisted. Reads never fail: a corrupt file reads as empty; it is moved aside
    (revoked.json.corrupt-<time>, with a warning), never overwritten."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None  # the file's mtime, size, inode when parsed
        self._by_id: dict[str, RevokeEntry] = {}

    def add(self, task_ids: Iterable[str], terminate: bool = False, signal: str = "SIGTERM") -> None:
        now = time.time()
        with self._locked():
            entries = {e.task_id: e for e in self._read_locked()}
            for task_id in task_ids:
                entries[task_id] = RevokeEntry(task_id, now, terminate, signal)
            self._write(entries.values())

    def discard(self, task_ids: Iterable[str]) -> None:
        drop = set(task_ids)
        with self._locked():
            self._write(e for e in self._read_locked() if e.task_id not in drop)

    def entries(self) -> list[RevokeEntry]:
        cutoff = time.time() - MAX_AGE
        return [e for e in self._read() if e.revoked_at >= cutoff]

    def ids(self) -> list[str]:
        return [e.task_id for e in self.entries()]

    def __contains__(self, task_id: object) -> bool:
        return task_id in set(self.ids())

    def entry(self, task_id: str) -> RevokeEntry | None:
        """The stored revoke of `task_id`, if any (the detail screen asks on every refresh: the file
        is parsed again only when it changed)."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._stamp != stamp:
            self._by_id = {e.task_id: e for e in self.entries()}
            self._stamp = stamp
        found = self._by_id.get(task_id)
        return found if found is not None and found.revoked_at >= time.time() - MAX_AGE else None

    def _read(self) -> list[RevokeEntry]:
        entries = self._parse()
        if entries is None:  # corrupt: look again under the lock before moving it aside
            with self._locked():
                return self._read_locked()
        return entries

    def _read_locked(self) -> list[RevokeEntry]:
        entries = self._parse()
        if entries is None:
            self._set_aside()
            return []
        return entries

    def _parse(self) -> list[RevokeEntry] | None:
        """The entries; [] when there is no (readable) file; None when its content is corrupt."""
        try:
            text = self.path.read_text()
        except OSError:
            return []
        try:
            raw = json.loads(text)
            return [RevokeEntry(str(r["task_id"]), float(r["revoked_at"]), bool(r.get("terminate")),
                                str(r.get("signal") or "SIGTERM")) for r in raw.get("revoked", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def _set_aside(self) -> None:
        try:
            aside = set_aside(self.path)
        except OSError as exc:
            log.warning("[stalk] revoke store %s is corrupt and cannot be moved aside: %s", self.path, exc)
            return
        log.warning("[stalk] revoke store %s is corrupt; moved to %s, starting a new one", self.path, aside.name)

    def _write(self, entries: Iterable[RevokeEntry]) -> None:
        cutoff = time.time() - MAX_AGE
        kept = sorted((e for e in entries if e.revoked_at >= cutoff), key=lambda e: e.revoked_at)[-MAX_ENTRIES:]
        write_private(self.path, json.dumps({"revoked": [asdict(e) for e in kept]}))  # temp file + rename

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = open_private(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def load_into_worker_state(data_dir: str | Path | None) -> int:
    """Inside a worker child, before it consumes: mark every stored revoke as revoked in
    celery.worker.state, so a task revoked while this worker was down is discarded on receipt."""
    if not data_dir:
        return 0
    from celery.worker import state

    ids = RevokeStore(revoke_store_path(data_dir)).ids()
    if ids:
        merge = getattr(state, "merge_revoked", None)  # celery >= 5.7 re-stamps with the local clock
        if merge is not None:
            merge(ids)
        else:
            state.revoked.update(ids)
    return len(ids)
