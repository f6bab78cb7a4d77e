"""Daily API quotas shared by every process of a stack: atomic, idempotent reservations in SQLite.

    from embedded.quota import QuotaLedger, QuotaSpec, metered

A quota has a daily unit limit, a priority reserve only priority calls may use, and a reset time in its
own timezone. Tasks are charged once per task id (a redelivered message is never charged twice)."""

from .app_ledger import (
    define_app_quotas,
    forget_ledgers,
    ledger_for_app,
    ledger_path,
    prepare_stack_quotas,
)
from .errors import QuotaError, QuotaExhausted
from .ledger import QuotaLedger
from .metered import MeteredTask, charge_key, charging, metered, retry_priority_at_reset
from .spec import QuotaSpec, QuotaStatus, RequestRow, Reservation

__all__ = [
    "MeteredTask", "QuotaError", "QuotaExhausted", "QuotaLedger", "QuotaSpec", "QuotaStatus", "RequestRow",
    "Reservation", "charge_key", "charging", "define_app_quotas", "forget_ledgers", "ledger_for_app",
    "ledger_path", "metered", "prepare_stack_quotas", "retry_priority_at_reset",
]
