"""What stopping the stack now would interrupt: tasks running, held by workers, waiting in queues.

The panel asks before it quits when any of these is non-zero, and can wait for the running ones
after telling Stalk's workers to stop taking new tasks (cancel_consumer on each of their queues)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stalk.embedded.children import node_name
from stalk.embedded.events.states import RECEIVED, RUNNING


@dataclass(frozen=True)
class Unfinished:
    running: int  # started, not finished
    held: int  # received by a worker (prefetched or due later), not started
    queued: int  # waiting in the queues Stalk's workers consume
    mode: str  # the broker mode: what happens to queued tasks depends on it

    @property
    def any(self) -> bool:
        return bool(self.running or self.held or self.queued)

    def fate(self, grace: float) -> str:
        """What quitting now does to them, in words."""
        parts = []
        if self.running:
            again = "lost" if self.mode == "embedded" else "run again at the next start"
            parts.append(f"running tasks get {grace:g} s to finish, then they are killed and {again}")
        waiting = self.held + self.queued
        if waiting and self.mode == "embedded":
            parts.append(f"the {waiting} waiting task(s) are lost: the embedded broker keeps nothing")
        elif waiting and self.mode == "external":
            parts.append(f"the {waiting} waiting task(s) stay on the external broker for its next worker")
        elif waiting:
            parts.append(f"the {waiting} waiting task(s) stay in Stalk's broker and run at the next start")
        return "; ".join(parts)


def unfinished(stack: Any) -> Unfinished:
    """Counts from the event store and the broker (blocking I/O: call it from a thread)."""
    counts = stack.events.counts_by_state() if stack.events is not None else {}
    running = sum(counts.get(state, 0) for state in RUNNING)
    consumed = {q for spec in stack.worker_specs for q in spec.queues}
    depths: dict[str, int] = {}
    if stack.control is not None and stack.mode != "eager":
        try:
            depths = stack.control.queue_depths()
        except Exception:  # a broker that is going away: count what the store knows
            depths = {}
    queued = sum(n for q, n in depths.items() if q in consumed)
    return Unfinished(running, counts.get(RECEIVED, 0), queued, stack.mode)


def stop_consuming(stack: Any) -> None:
    """Stalk's workers finish what they run but take nothing new (their queues are cancelled)."""
    if stack.control is None or stack.mode == "eager":
        return
    for spec in stack.worker_specs:
        for queue in spec.queues:
            stack.control.app.control.cancel_consumer(queue, destination=[node_name(spec)], reply=False)
