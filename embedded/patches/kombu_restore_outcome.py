"""kombu says "Restoring N unacknowledged message(s)" before it tries (at a worker's connection loss and
shutdown); while the broker is down the restore fails and the line claims what did not happen. This says
how it went, after the attempt: "Restored N ..." or "Could not restore N ...: <error>"
(embedded/log_folding.py drops kombu's own line in Stalk's workers).

Wraps `kombu.transport.virtual.base.QoS.restore_unacked_once` (reads its `_delivered` and the `restored`
flag kombu sets on it); written against kombu 5.7.0, checked by tests/test_upstream_canaries.py.
If removed: the worker logs kombu's "Restoring N" line alone, also when nothing was restored."""

from __future__ import annotations

import logging
from typing import Any


def say_restore_outcome() -> None:
    """Say after kombu's shutdown/connection-loss restore whether it worked: "Restored N ..." or "Could
    not restore N ...". Wraps kombu.transport.virtual.base.QoS.restore_unacked_once (canary:
    tests/test_upstream_canaries.py)."""
    from kombu.transport.virtual import base

    original = base.QoS.restore_unacked_once
    if getattr(original, "stalk_outcome", False):
        return
    logger = logging.getLogger("kombu.transport.virtual.base")

    def restore_unacked_once(self: Any, stderr: Any = None) -> Any:
        self._flush()  # acks not yet applied: what kombu counts
        held = len(self._delivered) if not getattr(self._delivered, "restored", False) else 0
        try:
            result = original(self, stderr)
        except Exception as exc:
            if held:
                logger.warning("Could not restore %d unacknowledged message(s): %s: %s", held,
                               type(exc).__name__, " ".join(str(exc).split())[:200])
            raise
        if held and not self._delivered:
            logger.info("Restored %d unacknowledged message(s)", held)
        return result

    restore_unacked_once.stalk_outcome = True  # type: ignore[attr-defined]
    base.QoS.restore_unacked_once = restore_unacked_once  # type: ignore[method-assign]
