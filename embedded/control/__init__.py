"""Submit, revoke, inspect and manage Celery workers, queues and beat entries (no UI here).

`stack.control` is a Control; the CLI builds one for any broker."""

from . import client
from .beat import BeatEntry
from .cluster import ClusterView
from .control import INSPECT_KINDS, Control, signal_name
from .problems import ControlError, Problem, SubmitError
from .request import SubmitRequest
from .revokes import RevokeEntry, RevokeStore, load_into_worker_state, revoke_store_path
from .validate import SubmitContext, validate
from .worker_report import HeldTask, WorkerReport, pool_name, queue_names

__all__ = [
    "INSPECT_KINDS", "BeatEntry", "ClusterView", "Control", "ControlError", "HeldTask", "Problem", "RevokeEntry",
    "RevokeStore", "SubmitContext", "SubmitError", "SubmitRequest", "WorkerReport", "load_into_worker_state",
    "pool_name", "queue_names", "revoke_store_path", "client", "signal_name", "validate",
]
