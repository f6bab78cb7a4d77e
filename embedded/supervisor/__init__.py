"""Process supervision: children with states, restarts, logs, stats, and no orphans."""

from .child import ChildSpec, ProcessInfo
from .logs import LogLine
from .registry import StackLockedError
from .states import ProcState
from .stats import ProcStats
from .supervisor import Supervisor

__all__ = ["ChildSpec", "LogLine", "ProcState", "ProcStats", "ProcessInfo", "StackLockedError", "Supervisor"]
