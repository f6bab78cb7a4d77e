"""Child output: a bounded in-memory ring (for the UI) mirrored to a rotating file (for later)."""

from __future__ import annotations

import io
import logging
import logging.handlers
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from stalk.embedded.safe_files import open_append
from stalk.embedded.safe_text import printable


@dataclass(frozen=True)
class LogLine:
    seq: int
    ts: float
    process: str
    text: str


class LogRing:
    """Thread-safe bounded ring of lines with a monotonic sequence number for incremental reads."""

    def __init__(self, process: str, maxlen: int, file: Path | None = None,
                 max_bytes: int = 5_000_000, backups: int = 3) -> None:
        self.process = process
        self._lines: deque[LogLine] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._seq = 0
        self._file_logger = _file_logger(process, file, max_bytes, backups) if file else None

    def append(self, text: str) -> LogLine:
        text = printable(text.rstrip("\r\n"), "\t")  # a child logs what its tasks were given and returned
        with self._lock:
            self._seq += 1
            line = LogLine(self._seq, time.time(), self.process, text)
            self._lines.append(line)
        if self._file_logger is not None:
            self._file_logger.info(text)
        return line

    def since(self, seq: int = 0) -> list[LogLine]:
        """Lines with a sequence number above `seq` still in the ring."""
        with self._lock:
            if not self._lines or self._lines[-1].seq <= seq:
                return []
            return [line for line in self._lines if line.seq > seq]

    @property
    def last_seq(self) -> int:
        return self._seq

    def close(self) -> None:
        if self._file_logger is not None:
            for handler in list(self._file_logger.handlers):
                handler.close()
                self._file_logger.removeHandler(handler)


def _file_logger(process: str, file: Path, max_bytes: int, backups: int) -> logging.Logger:
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    logger = logging.getLogger(f"stalk.child.{process}.{id(file)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = PrivateRotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.handlers[:] = [handler]
    return logger


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Appends to a file of the user's own (0600), never through a symlink planted at its name
    (embedded/safe_files.py); rotation renames, which replaces a link rather than following it."""

    def _open(self) -> io.TextIOWrapper:
        return open(open_append(Path(self.baseFilename)), "a", encoding=self.encoding, errors=self.errors)
