"""Generated secrets, stored in files only the user can read (mode 0600)."""

from __future__ import annotations

import secrets
from pathlib import Path

from stalk.embedded.safe_files import read_private, write_private

__all__ = ["load_or_create_password", "load_or_create_secret", "write_private"]


def load_or_create_password(path: Path) -> str:
    """The broker password for this data dir: reused across runs so AOF data stays reachable. Read only
    from the user's own file, never through a link (embedded/safe_files.py)."""
    return load_or_create_secret(path, 24)


def load_or_create_secret(path: Path, nbytes: int) -> str:
    """The secret kept in `path` (mode 0600), made on first use."""
    try:
        value = read_private(path).strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    value = secrets.token_urlsafe(nbytes)
    write_private(path, value + "\n")
    return value
