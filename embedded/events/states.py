"""Task states and the rule that lets a task's state move only forward.

Celery's precedence (celery.states.PRECEDENCE) with Stalk's custom states placed explicitly:
LOST takes the slot Celery keeps for unknown states (above REVOKED), PROGRESS sits just above
STARTED (a revoke or LOST must still win over a task that reports progress). Lower index wins.
PURGED (its message deleted from the queue by a purge) is finished, but not by precedence: any later
event of the task (its timestamp after the purge) wins, since then the message was not purged after all.
"""

from __future__ import annotations

PENDING, RECEIVED, STARTED, PROGRESS, RETRY = "PENDING", "RECEIVED", "STARTED", "PROGRESS", "RETRY"
SUCCESS, FAILURE, REVOKED, REJECTED, LOST = "SUCCESS", "FAILURE", "REVOKED", "REJECTED", "LOST"
PURGED = "PURGED"
#: Put back in its queue by Stalk after its worker died holding it (running or prefetched): it runs again.
REQUEUED = "REQUEUED"
REQUEUED_EVENT = "task-requeued"  # Stalk's own event: uuid, timestamp, hostname (the dead worker), reason

ALL_STATES = (PENDING, RECEIVED, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE, REVOKED, REJECTED, LOST, PURGED,
              REQUEUED)
PRECEDENCE = (SUCCESS, FAILURE, LOST, REVOKED, PURGED, PROGRESS, STARTED, RECEIVED, REJECTED, RETRY, REQUEUED,
              PENDING)
RANK: dict[str, int] = {state: i for i, state in enumerate(PRECEDENCE)}
CUSTOM_RANK = RANK[PROGRESS]  # any other custom state (update_state(state="X")) ranks like PROGRESS

#: Finished: only a state of strictly higher precedence may replace these (FAILURE -> SUCCESS ok);
#: PURGED only by a later event (see the module doc).
FINISHED = frozenset({SUCCESS, FAILURE, REVOKED, LOST, PURGED})
#: What a purge may mark PURGED when it deleted the task's message: waiting for a worker (PENDING, RETRY:
#: the retry's message) or put back in the queue (REJECTED with requeue, LOST: acks_late). Not RECEIVED
#: or running: a worker holds that message (a copy kombu restored to the queue is a duplicate).
PURGEABLE = frozenset({PENDING, RETRY, REJECTED, LOST})
#: A new attempt may follow these (and any state may lead to them while unfinished).
AGAIN = frozenset({RETRY, REQUEUED})
#: Running on a worker: becomes LOST when that worker dies.
RUNNING = frozenset({STARTED, PROGRESS})

EVENT_STATE: dict[str, str] = {
    "task-sent": PENDING, "task-received": RECEIVED, "task-started": STARTED,
    "task-progress": PROGRESS, "task-succeeded": SUCCESS, "task-failed": FAILURE,
    "task-retried": RETRY, "task-revoked": REVOKED, "task-rejected": REJECTED,
}


def precedence(state: str) -> int:
    """Lower is stronger, as celery.states.precedence."""
    return RANK.get(state, CUSTOM_RANK)


def moves(old: str, new: str) -> bool:
    """May a task in `old` take state `new`? Celery's rule (RETRY in or out is always allowed, so a
    new attempt may start after RETRY), except that a finished task never goes back."""
    if old == new:
        return old not in FINISHED
    if old == PURGED:
        return True  # when the event is later than the purge (the fold compares the timestamps)
    p_new, p_old = RANK.get(new, CUSTOM_RANK), RANK.get(old, CUSTOM_RANK)
    if old in FINISHED:
        return p_new < p_old
    return new in AGAIN or old in AGAIN or p_new <= p_old
