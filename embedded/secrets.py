"""Generated secrets, stored in files only the user can read (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` created with mode 0600 (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def load_or_create_password(path: Path) -> str:
    """The broker password for this data dir: reused across runs so AOF data stays reachable."""
    if path.exists():
        os.chmod(path, 0o600)
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    write_private(path, value + "\n")
    return value
