"""Daily API quotas shared by every process of a stack: atomic, idempotent reservations in SQLite.

    from stalk.embedded.quota import QuotaLedger, QuotaSpec, metered

A quota has a daily unit limit, a priority reserve only priority calls may use, and a reset time in its
own timezone. Tasks are charged once per task id (a redelivered message is never charged twice)."""

from stalk.embedded.quota.app_ledger import (
    define_app_quotas,
    forget_ledgers,
    ledger_for_app,
    ledger_path,
    prepare_stack_quotas,
)
from stalk.embedded.quota.errors import QuotaError, QuotaExhausted
from stalk.embedded.quota.ledger import QuotaLedger
from stalk.embedded.quota.metering import (
    MeteredTask,
    charge_key,
    charging,
    metered,
    retry_priority_at_reset,
)
from stalk.embedded.quota.spec import QuotaSpec, QuotaStatus, RequestRow, Reservation
from stalk.embedded.quota.waiting import failed_attempts, retry_failed, wait, waiting_until

__all__ = [
    "MeteredTask", "QuotaError", "QuotaExhausted", "QuotaLedger", "QuotaSpec", "QuotaStatus", "RequestRow",
    "Reservation", "charge_key", "charging", "define_app_quotas", "forget_ledgers", "ledger_for_app",
    "ledger_path", "metered", "prepare_stack_quotas", "retry_priority_at_reset",
    "failed_attempts", "retry_failed", "wait", "waiting_until",
]
