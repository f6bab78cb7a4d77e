"""Submit, revoke, inspect and manage Celery workers, queues and beat entries (no UI here).

`stack.control` is a Control; the CLI builds one for any broker."""

from stalk.embedded.control.beat import BeatEntry
from stalk.embedded.control.client import LocalStack, local_stack, user_app_for
from stalk.embedded.control.client import connect as connect_control
from stalk.embedded.control.cluster import ClusterView
from stalk.embedded.control.control import INSPECT_KINDS, Control
from stalk.embedded.control.inputs import (
    RATE_RE,
    check_count,
    check_name,
    check_rate,
    check_seconds,
    check_task_id,
    check_time_limits,
    shown,
    signal_name,
)
from stalk.embedded.control.problems import BadInput, ControlError, Problem, SubmitError
from stalk.embedded.control.request import SubmitRequest
from stalk.embedded.control.revokes import (
    RevokeEntry,
    RevokeStore,
    load_into_worker_state,
    revoke_store_path,
)
from stalk.embedded.control.validation import TASK_ID_RE, SubmitContext, validate
from stalk.embedded.control.worker_report import HeldTask, WorkerReport, pool_name, queue_names

__all__ = [
    "INSPECT_KINDS", "BeatEntry", "ClusterView", "Control", "ControlError", "HeldTask", "Problem", "RevokeEntry",
    "RevokeStore", "SubmitContext", "SubmitError", "SubmitRequest", "WorkerReport", "load_into_worker_state",
    "pool_name", "queue_names", "revoke_store_path", "signal_name", "validate",
    "LocalStack", "connect_control", "local_stack", "user_app_for",
    "RATE_RE", "TASK_ID_RE", "BadInput", "check_count", "check_name", "check_rate", "check_seconds",
    "check_task_id", "check_time_limits", "shown",
]
