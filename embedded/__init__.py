"""Stalk's stack: broker, supervised workers and beat, events, control and quota. No UI here.

Public API (what the panel and scripts use):
"""

from .broker import BrokerError, BrokerInfo
from .config import ConfigError, StackConfig, WorkerSpec, load_config
from .stack import Stack
from .supervisor import LogLine, ProcessInfo, ProcState, ProcStats, StackLockedError

__all__ = [
    "BrokerError", "BrokerInfo", "ConfigError", "LogLine", "ProcState", "ProcStats", "ProcessInfo",
    "Stack", "StackConfig", "StackLockedError", "WorkerSpec", "load_config",
]
