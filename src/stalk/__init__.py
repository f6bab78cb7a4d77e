"""Stalk: the whole Celery stack in one terminal.

The public API for scripts and tasks:

    from stalk import Stack, load_config
    from stalk.quota import metered, MeteredTask, QuotaExhausted

`stalk.embedded` is the stack (broker, supervised workers and beat, events, control, quota; it never
imports Textual), `stalk.panel` the Textual panel and the `stalk` command, a client of the stack's API.
The names below are loaded on first use, so `import stalk` (and a worker child) pays only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stalk.embedded import (
        BrokerError,
        BrokerInfo,
        ConfigError,
        LogLine,
        ProcessInfo,
        ProcState,
        ProcStats,
        Stack,
        StackConfig,
        StackLockedError,
        WorkerSpec,
        load_config,
    )

__all__ = [
    "BrokerError", "BrokerInfo", "ConfigError", "LogLine", "ProcState", "ProcStats", "ProcessInfo",
    "Stack", "StackConfig", "StackLockedError", "WorkerSpec", "load_config",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("stalk.embedded"), name)
    raise AttributeError(f"module 'stalk' has no attribute {name!r}")
