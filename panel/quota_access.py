"""The quota ledger of a stack, when embedded.quota exists and the stack has a quota db."""

from __future__ import annotations

from typing import Any


def open_ledger(stack: Any) -> Any:
    """A QuotaLedger on the stack's quota db, or None (no ledger module, or no db yet)."""
    if stack is None:
        return None
    try:
        from stalk.embedded.quota import QuotaLedger
    except ImportError:
        return None
    path = stack.paths.quota_db
    if not path.exists():
        return None
    return QuotaLedger(path)
