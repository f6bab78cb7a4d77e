"""The stacks running on the default data dirs, and which one a command without -A or a data dir means.

A running Stalk publishes `state/status.json` in its data dir (embedded/status_file.py) with its app spec
and the directory that app is imported from. The default data dirs are all under `<base>/apps/` (plus the
old single default dir, `<base>`, which the demo may still use: embedded/paths.py), so a command finds the
running stacks by reading those status files. A stack on an explicit data dir (--data-dir elsewhere) is
found only with that data dir.

`locate_stack(config)`: with a data dir but no app, the app of the stack running there; with neither an app nor a data dir set (flag, environment or stalk.toml), exactly
one running stack: that one (its data dir, and its app imported from its directory); several: a
ConfigError listing them; none: the config as it is (the demo's default data dir). A broker URL in the
config (--broker-url, CELERY_BROKER_URL) keeps only the stacks on that broker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from stalk.embedded.config import ConfigError, StackConfig
from stalk.embedded.paths import DEMO_APP, StackPaths, apps_dir, base_data_dir, broker_target
from stalk.embedded.status_file import read_status


@dataclass(frozen=True)
class RunningStack:
    """What a running Stalk on a default data dir says about itself."""

    data_dir: Path
    app: str
    app_dir: Path | None
    pid: int
    broker_url: str | None
    mode: str | None

    def describe(self) -> str:
        return f"{self.data_dir} (app {self.app}, pid {self.pid})"


def running_stacks() -> list[RunningStack]:
    """Every Stalk running on a default data dir, in the order of their dirs."""
    base, apps = base_data_dir(), apps_dir()
    candidates = [base, *(sorted(p for p in apps.iterdir() if p.is_dir()) if apps.is_dir() else [])]
    return [stack for data_dir in candidates if (stack := running_on(data_dir)) is not None]


def running_on(data_dir: Path) -> RunningStack | None:
    """The Stalk running on `data_dir`, from its status file; None when none runs there."""
    status = read_status(StackPaths(data_dir).state)
    if status is None:
        return None
    broker = status.get("broker") or {}
    app_dir = status.get("app_dir")
    return RunningStack(data_dir=data_dir, app=status.get("app") or DEMO_APP,
                        app_dir=Path(app_dir) if app_dir else None, pid=int(status.get("pid") or 0),
                        broker_url=broker.get("broker_url"), mode=broker.get("mode"))


def on_broker(url: str, stacks: list[RunningStack]) -> list[RunningStack]:
    """The stacks whose broker is `url`'s (host, port and db or vhost; credentials aside)."""
    target = broker_target(url)
    return [s for s in stacks if s.broker_url and broker_target(s.broker_url) == target]


def locate_stack(config: StackConfig) -> tuple[StackConfig, RunningStack | None]:
    """`config` pointed at the running stack it means (see the module docstring), and that stack; or
    `config` unchanged and None. ConfigError (one line) when several stacks could be meant."""
    if config.app is not None:
        return config, None
    if config.data_dir is not None:  # the app of the stack running there, imported from its directory
        stack = running_on(config.data_dir)
        if stack is None:
            return config, None
        return replace(config, app=stack.app, app_dir=stack.app_dir), stack
    stacks = running_stacks()
    if config.broker.url:
        stacks = on_broker(config.broker.url, stacks)
    if not stacks:
        return config, None
    if len(stacks) > 1:
        listing = "; ".join(s.describe() for s in stacks)
        raise ConfigError(f"{len(stacks)} Stalk stacks are running: {listing}; choose one with --data-dir DIR "
                          "or -A APP")
    (stack,) = stacks
    return replace(config, data_dir=stack.data_dir, app=stack.app, app_dir=stack.app_dir), stack
