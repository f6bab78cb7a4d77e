"""Where Stalk keeps its config, data, logs and state (platformdirs, overridable).

The default data dir is per app, so two apps never share a history, quota ledger, revoke store, beat
schedule or broker (its AOF keeps the queues an app declared):

- the built-in demo: `<base>/apps/demo`;
- a user's app (`-A package.module:app`): `<base>/apps/<app spec>-<hash>`, the hash of the app spec and
  the directory it is imported from (two projects that both say `proj.celery:app` differ);
- attached to a broker Stalk does not run (external mode): `<base>/apps/<app spec>@<host>-<hash>`, the
  hash taking in the broker's target too (scheme, host:port and db or vhost; never its user or password),
  so each cluster keeps its own; the demo's is `<base>/apps/demo@<host>-<hash>`.

`<base>` is the platform's user data dir (`~/.local/share/stalk` on Linux). An explicit data dir
(--data-dir, STALK_DATA_DIR, data_dir in stalk.toml) wins. Stalk before per-app dirs kept everything in
`<base>` itself: when that old dir holds the demo's task history (and `<base>/apps/demo` does not exist
yet) the demo keeps using it, so a demo history is never lost; a user's app always starts in its own dir
(README: how to move old data there).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import platformdirs

APP_NAME = "stalk"
DEMO_APP = "stalk.embedded.demo.app:app"
DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "stalk.toml"


def base_data_dir() -> Path:
    """The platform's user data dir for Stalk: the default data dirs live under it (see the docstring)."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def apps_dir() -> Path:
    """Where the default data dirs are, one per app (and per external broker)."""
    return base_data_dir() / "apps"


def is_demo(app: str | None) -> bool:
    return app in (None, DEMO_APP)


def default_data_dir(app: str | None, import_dir: Path, broker_url: str | None = None) -> Path:
    """The default data dir of `app` (None: the demo) imported from `import_dir`, on its own broker, or
    attached to `broker_url` (external mode)."""
    target = broker_target(broker_url) if broker_url else ""
    where = "@" + _slug(urlsplit(broker_url).hostname or "broker") if broker_url else ""  # readable only
    if is_demo(app):
        if not target:
            demo = apps_dir() / "demo"
            return base_data_dir() if not demo.exists() and _holds_demo_history(base_data_dir()) else demo
        return apps_dir() / f"demo{where}-{_digest(target)}"
    assert app is not None
    return apps_dir() / f"{_slug(app)}{where}-{_digest(app, str(import_dir.resolve()), target)}"


def broker_target(url: str) -> str:
    """A broker URL without its credentials or options, defaults filled in (and every loopback name as
    localhost): what makes two URLs the same broker (`redis://host:6379/0`, `amqp://host:5672//`)."""
    parts = urlsplit(url)
    scheme = parts.scheme.removeprefix("py")  # pyamqp:// is amqp://
    if scheme.endswith("+socket"):  # a Unix socket: its path is the broker, the db in virtual_host
        db = dict(parse_qsl(parts.query)).get("virtual_host") or "0"
        return f"{scheme}://{parts.path}/{db}"
    host = (parts.hostname or "localhost").lower()
    host = "localhost" if host in LOOPBACK else host
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: the URL as written
        port = None
    path = parts.path
    if scheme.startswith("redis"):
        path = "/" + (path.strip("/") or "0")
    elif scheme.startswith("amqp"):
        path = "/" + (path[1:] or "/")  # the vhost: "/" by default
    return f"{scheme}://{host}:{port}{path}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")[:48] or "app"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


def _holds_demo_history(old_dir: Path) -> bool:
    """True when the old single default dir's task history has a demo task (read-only, never raises)."""
    history = old_dir / "state" / "history.sqlite3"
    if not history.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{history}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT 1 FROM tasks WHERE name LIKE 'demo.%' LIMIT 1").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


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

    @property
    def beat_runs(self) -> Path:
        """What beat (and run now) really sent, per entry: embedded/control/beat_runs.py."""
        return self.state / "beat-runs.sqlite3"

    def worker_statedb(self, name: str) -> Path:
        return self.state / f"worker-{name}.state"

    def ensure(self) -> None:
        for d in (self.data_dir, self.logs, self.state, self.redis):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
