"""Process supervision: children with states, restarts, logs, stats, and no orphans."""

from stalk.embedded.supervisor.child import ChildSpec, ProcessInfo
from stalk.embedded.supervisor.logs import LogLine
from stalk.embedded.supervisor.registry import StackLockedError
from stalk.embedded.supervisor.states import ProcState
from stalk.embedded.supervisor.stats import ProcStats
from stalk.embedded.supervisor.supervisor import Supervisor

__all__ = ["ChildSpec", "LogLine", "ProcState", "ProcStats", "ProcessInfo", "StackLockedError", "Supervisor"]
