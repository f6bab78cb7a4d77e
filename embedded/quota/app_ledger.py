"""Which ledger a Celery app's metered tasks charge, and defining the quotas the app declares."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from stalk.embedded.config import ConfigError
from stalk.embedded.quota.errors import QuotaError
from stalk.embedded.quota.ledger import QuotaLedger
from stalk.embedded.quota.spec import QuotaSpec

_lock = threading.Lock()
_ledgers: dict[str, QuotaLedger] = {}
_defined: set[tuple[str, int]] = set()
_in_process: dict[int, Path] = {}  # id(app) -> quota db of the eager stack running its tasks here


class StackQuotaError(QuotaError, ConfigError):
    """The stack cannot start on this quota db (a ConfigError, so `stalk up` prints one line)."""


def ledger_path(app: Any) -> Path:
    """app.conf.stalk_quota_db; else the quota db of the Stalk running this app (its worker child, or
    the eager stack in this process); else, for a plain `celery worker` on the broker of a Stalk running
    on a default data dir (`eval "$(stalk env)"`), that stack's (the ledger its `stalk quota` shows);
    else the one in the platform's base data dir."""
    from stalk.embedded.children import child_data_dir
    from stalk.embedded.paths import StackPaths, base_data_dir

    configured = _conf(app, "stalk_quota_db")
    if configured:
        return Path(str(configured)).expanduser()
    if id(app) in _in_process:
        return _in_process[id(app)]
    data_dir = child_data_dir()
    if data_dir:
        return StackPaths(Path(data_dir)).quota_db
    broker_url = _conf(app, "broker_url")
    stack_dir = _stack_on_broker(str(broker_url)) if broker_url else None
    return StackPaths(stack_dir or base_data_dir()).quota_db


@functools.lru_cache(maxsize=16)
def _stack_on_broker(broker_url: str) -> Path | None:
    """The data dir of the one Stalk running (on a default data dir) with this broker; looked up once."""
    from stalk.embedded.running import on_broker, running_stacks

    stacks = on_broker(broker_url, running_stacks())
    return stacks[0].data_dir if len(stacks) == 1 else None


def app_quotas(app: Any) -> list[QuotaSpec]:
    """The quotas declared in `app.conf.stalk_quotas` ({name: QuotaSpec kwargs or QuotaSpec})."""
    declared = _conf(app, "stalk_quotas") or {}
    if not isinstance(declared, dict):
        raise QuotaError(f"app.conf.stalk_quotas must be a dict of name -> settings, got {declared!r}")
    return [QuotaSpec.of(name, settings) for name, settings in declared.items()]


def define_app_quotas(app: Any, ledger: QuotaLedger) -> list[QuotaSpec]:
    specs = app_quotas(app)
    for spec in specs:
        ledger.define(spec)
    return specs


def ledger_for_app(app: Any) -> QuotaLedger:
    """The (cached) ledger for `app`, with the app's declared quotas defined once per process."""
    path = ledger_path(app)
    with _lock:
        ledger = _ledgers.get(str(path))
        if ledger is None:
            ledger = _ledgers[str(path)] = QuotaLedger(path)
        if (str(path), id(app)) not in _defined:
            define_app_quotas(app, ledger)
            _defined.add((str(path), id(app)))
    return ledger


def prepare_stack_quotas(app: Any, quota_db: Path, in_process: bool = False) -> None:
    """At stack start: define the app's declared quotas in the stack's ledger, so the db exists for the
    panel. `in_process` (eager mode): tasks run here, so they charge this ledger too.
    No declared quotas and no db yet: nothing is created."""
    if in_process:
        _in_process[id(app)] = Path(quota_db)
    try:
        if not app_quotas(app) and not Path(quota_db).exists():
            return
        with QuotaLedger(quota_db) as ledger:
            define_app_quotas(app, ledger)
    except QuotaError as exc:
        raise StackQuotaError(str(exc)) from None


def forget_ledgers() -> None:
    """Close cached ledgers (tests, or after moving a db aside)."""
    with _lock:
        for ledger in _ledgers.values():
            ledger.close()
        _ledgers.clear()
        _defined.clear()


def _conf(app: Any, key: str) -> Any:
    conf = getattr(app, "conf", None)
    if conf is None:
        return None
    try:
        return conf.get(key)
    except Exception:
        return getattr(conf, key, None)
