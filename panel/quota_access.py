"""The quota ledger of a stack, when embedded.quota exists and the stack has a quota db.

On a RemoteStack (the panel attached to a stack process) it is the stack's RemoteQuota: every read is
an API request and the panel opens no sqlite file of its own."""

from __future__ import annotations

from typing import Any


def open_ledger(stack: Any) -> Any:
    """A QuotaLedger on the stack's quota db (or the stack's RemoteQuota), or None (no ledger module, or
    no db yet). Callers close() it after use (a no-op for a RemoteQuota)."""
    if stack is None:
        return None
    if getattr(stack, "remote", False):
        quota = stack.quota
        return quota if quota is not None and quota.exists() else None
    try:
        from stalk.embedded.quota import QuotaLedger
    except ImportError:
        return None
    path = stack.paths.quota_db
    if not path.exists():
        return None
    return QuotaLedger(path)
