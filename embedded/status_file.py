"""`<data_dir>/state/status.json`: what a running Stalk publishes for `stalk status` and other CLIs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stalk.embedded.broker.base import BrokerInfo
from stalk.embedded.safe_files import read_private, write_private
from stalk.embedded.supervisor import ProcessInfo


def status_path(state_dir: Path) -> Path:
    return state_dir / "status.json"


def write_status(state_dir: Path, broker: BrokerInfo | None, processes: list[ProcessInfo],
                 app: str | None = None, app_dir: Path | None = None, api: dict[str, Any] | None = None) -> None:
    """Atomically replace the status file (mode 0600: it carries the broker URL with its password).
    `app` and `app_dir` (the app spec and the directory it is imported from) let a command run elsewhere
    without -A use the stack's own app (embedded/running.py)."""
    data = {
        "pid": os.getpid(),
        "written_at": time.time(),
        "data_dir": str(state_dir.parent),
        "app": app,
        "app_dir": str(app_dir) if app_dir is not None else None,
        "broker": asdict(broker) if broker else None,
        "processes": [_process_dict(p) for p in processes],
        "api": api,  # where the stack's API listens (embedded/service): socket, url, token_file
    }
    write_private(status_path(state_dir), json.dumps(data))  # a temp file renamed over it


def _process_dict(p: ProcessInfo) -> dict[str, Any]:
    d = asdict(p)
    d["state"] = str(p.state)
    d["uptime"] = p.uptime
    return d


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last published status, or None when no Stalk runs on this data dir (or the file is not the
    user's own: another user may have written it)."""
    path = status_path(state_dir)
    try:
        data = json.loads(read_private(path))
    except (OSError, ValueError):
        return None
    if not pid_alive(int(data.get("pid", 0))):
        return None
    return data


def pid_alive(pid: int) -> bool:
    """`pid` runs (a zombie, ended but not reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def clear_status(state_dir: Path) -> None:
    status_path(state_dir).unlink(missing_ok=True)
