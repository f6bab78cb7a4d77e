"""Task states and the rule that lets a task's state move only forward.

Celery's precedence (celery.states.PRECEDENCE) with Stalk's two custom states placed explicitly:
LOST takes the slot Celery keeps for unknown states (above REVOKED), PROGRESS sits just above
STARTED (a revoke or LOST must still win over a task that reports progress). Lower index wins.
"""

from __future__ import annotations

PENDING, RECEIVED, STARTED, PROGRESS, RETRY = "PENDING", "RECEIVED", "STARTED", "PROGRESS", "RETRY"
SUCCESS, FAILURE, REVOKED, REJECTED, LOST = "SUCCESS", "FAILURE", "REVOKED", "REJECTED", "LOST"

ALL_STATES = (PENDING, RECEIVED, STARTED, PROGRESS, RETRY, SUCCESS, FAILURE, REVOKED, REJECTED, LOST)
PRECEDENCE = (SUCCESS, FAILURE, LOST, REVOKED, PROGRESS, STARTED, RECEIVED, REJECTED, RETRY, PENDING)
RANK: dict[str, int] = {state: i for i, state in enumerate(PRECEDENCE)}
CUSTOM_RANK = RANK[PROGRESS]  # any other custom state (update_state(state="X")) ranks like PROGRESS

#: Finished: only a state of strictly higher precedence may replace these (FAILURE -> SUCCESS ok).
FINISHED = frozenset({SUCCESS, FAILURE, REVOKED, LOST})
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
    p_new, p_old = RANK.get(new, CUSTOM_RANK), RANK.get(old, CUSTOM_RANK)
    if old in FINISHED:
        return p_new < p_old
    return new == RETRY or old == RETRY or p_new <= p_old
