"""Daily API quotas for your tasks (the stack's `stalk.embedded.quota`, under its public name).

    from stalk.quota import metered, MeteredTask, QuotaExhausted
"""

from stalk.embedded.quota import (
    MeteredTask,
    QuotaError,
    QuotaExhausted,
    QuotaLedger,
    QuotaSpec,
    QuotaStatus,
    metered,
    retry_priority_at_reset,
)

__all__ = [
    "MeteredTask", "QuotaError", "QuotaExhausted", "QuotaLedger", "QuotaSpec", "QuotaStatus", "metered",
    "retry_priority_at_reset",
]
