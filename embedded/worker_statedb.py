"""Celery's `--statedb` (a worker's revoked ids and clock, a shelve): an unreadable one is moved aside.

Celery opens it before the worker consumes and dies on any error, so one damaged file would keep the
worker in a restart loop. Stalk's own revoke store (control/revokes.py) still re-applies revokes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stalk.embedded.paths import set_aside

SUFFIXES = ("", ".dir", ".dat", ".bak", ".db")  # every dbm flavour's files for one shelve name


def statedb_arg(celery_args: list[str]) -> str | None:
    for i, arg in enumerate(celery_args):
        if arg == "--statedb" and i + 1 < len(celery_args):
            return celery_args[i + 1]
        if arg.startswith("--statedb="):
            return arg.split("=", 1)[1]
    return None


def set_aside_if_unreadable(path: str) -> list[Path]:
    """Open the db the way the worker will; if that fails, rename its files to *.corrupt-<time>, say so
    on stderr (the worker's log) and return the new names."""
    from celery.worker import state

    try:
        state.Persistent(state, path).close()
        return []
    except Exception as exc:
        stamp = int(time.time())  # one for all of the shelve's files
        moved = [set_aside(Path(path + suffix), stamp) for suffix in SUFFIXES if Path(path + suffix).exists()]
        print(f"[stalk] worker state db {path} is unreadable ({type(exc).__name__}: {exc}); moved aside to "
              f"{', '.join(p.name for p in moved)}, starting a new one", file=sys.stderr, flush=True)
        return moved
