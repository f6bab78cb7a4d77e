"""Live task and worker events: a bounded store fed by a receiver thread (or eager-mode signals),
batched change notifications, and SQLite history.

`from embedded.events import EventStore, TaskRecord, WorkerRecord, Changes`
"""

from stalk.embedded.events.history import HistoryError, read_tasks
from stalk.embedded.events.paced import Unwanted
from stalk.embedded.events.records import ROUTE_SOURCE, Changes, TaskEvent, TaskRecord, WorkerRecord
from stalk.embedded.events.states import ALL_STATES, FINISHED, RUNNING, precedence
from stalk.embedded.events.store import EventStore, StoreBusy

__all__ = [
    "ALL_STATES", "FINISHED", "ROUTE_SOURCE", "RUNNING", "Changes", "EventStore", "HistoryError", "StoreBusy", "TaskEvent",
    "TaskRecord", "Unwanted", "WorkerRecord", "precedence", "read_tasks",
]
