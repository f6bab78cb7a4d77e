"""The life cycle of a supervised process."""

from __future__ import annotations

from enum import StrEnum


class ProcState(StrEnum):
    STARTING = "starting"  # spawned, not yet answering
    READY = "ready"  # a worker that answers a Celery ping
    UNRESPONSIVE = "unresponsive"  # a ready worker that stopped answering pings (alive, not up)
    RUNNING = "running"  # broker or beat up and serving
    BACKING_OFF = "backing-off"  # crashed, waiting before the next restart
    CRASHED = "crashed"  # exited on its own; restart pending or given up
    STOPPED = "stopped"  # stopped on purpose

    @property
    def alive(self) -> bool:
        return self in (ProcState.STARTING, ProcState.READY, ProcState.RUNNING, ProcState.UNRESPONSIVE)

    @property
    def up(self) -> bool:
        return self in (ProcState.READY, ProcState.RUNNING)
