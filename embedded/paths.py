"""Where Stalk keeps its config, data, logs and state (platformdirs, overridable)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "stalk"


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "stalk.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def set_aside(path: Path, stamp: int | None = None) -> Path:
    """Rename a damaged file to <name>.corrupt-<time>, kept for the user and never overwritten; the new
    path. OSError if it cannot be moved."""
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time()) if stamp is None else stamp}")
    os.replace(path, aside)
    return aside


@dataclass(frozen=True)
class StackPaths:
    """Every file the stack writes, derived from one data dir."""

    data_dir: Path

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def state(self) -> Path:
        return self.data_dir / "state"

    @property
    def redis(self) -> Path:
        return self.data_dir / "redis"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "stalk.lock"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "stalk.pid"

    @property
    def children_file(self) -> Path:
        return self.state / "children.json"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "broker.password"

    @property
    def history_db(self) -> Path:
        return self.state / "history.sqlite3"

    @property
    def quota_db(self) -> Path:
        return self.state / "quota.sqlite3"

    @property
    def beat_schedule(self) -> Path:
        return self.state / "beat-schedule"

    def worker_statedb(self, name: str) -> Path:
        return self.state / f"worker-{name}.state"

    def ensure(self) -> None:
        for d in (self.data_dir, self.logs, self.state, self.redis):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
