"""Live task and worker events: a bounded store fed by a receiver thread (or eager-mode signals),
batched change notifications, and SQLite history.

`from embedded.events import EventStore, TaskRecord, WorkerRecord, Changes`
"""

from .history import HistoryError, read_tasks
from .paced import Unwanted
from .records import Changes, TaskEvent, TaskRecord, WorkerRecord
from .states import ALL_STATES, FINISHED, RUNNING, precedence
from .store import EventStore, StoreBusy

__all__ = [
    "ALL_STATES", "FINISHED", "RUNNING", "Changes", "EventStore", "HistoryError", "StoreBusy", "TaskEvent",
    "TaskRecord", "Unwanted", "WorkerRecord", "precedence", "read_tasks",
]
