"""Stalk's stack: broker, supervised workers and beat, events, control and quota. No UI here.

Public API: the names below, and the names exported by the packages directly under this one
(stalk.embedded.events, .control, .quota, .broker, .supervisor, .demo). The panel, the CLI and the demo
import nothing else of the stack (pyproject.toml [tool.importlinter] checks it).
"""

from stalk.embedded.broker import BrokerError, BrokerInfo
from stalk.embedded.celery_app import DEMO_APP, missing_app
from stalk.embedded.celery_output import FileSink, OutputRoute, route_output
from stalk.embedded.children import child_data_dir, run_beat, run_worker
from stalk.embedded.config import ConfigError, StackConfig, WorkerSpec, load_config
from stalk.embedded.foreground import FOREGROUND
from stalk.embedded.in_flight import Unfinished, stop_consuming, unfinished
from stalk.embedded.running import RunningStack, locate_stack, running_stacks
from stalk.embedded.safe_text import printable
from stalk.embedded.stack import OWN_LOG, Stack
from stalk.embedded.status_file import read_status
from stalk.embedded.supervisor import LogLine, ProcessInfo, ProcState, ProcStats, StackLockedError

__all__ = [
    "FileSink", "OutputRoute", "route_output",
    "DEMO_APP", "FOREGROUND", "BrokerError", "BrokerInfo", "ConfigError", "LogLine", "ProcState", "ProcStats",
    "ProcessInfo", "Stack", "StackConfig", "StackLockedError", "WorkerSpec", "child_data_dir", "load_config",
    "read_status", "run_beat", "run_worker", "Unfinished", "stop_consuming", "unfinished",
    "RunningStack", "locate_stack", "missing_app", "running_stacks", "OWN_LOG", "printable",
]
