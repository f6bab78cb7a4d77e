"""The worker half of the fold: heartbeats, online/offline, and LOST for the tasks of a dead worker."""

from __future__ import annotations

from collections.abc import Callable

from stalk.embedded.events.records import TaskRecord, WorkerRecord
from stalk.embedded.events.states import LOST, RUNNING
from stalk.embedded.safe_text import printable


class WorkerFold:
    """Mixed into Fold, which owns the attributes declared here."""

    tasks: dict[str, TaskRecord]
    workers: dict[str, WorkerRecord]
    by_state: dict[str, dict[str, None]]
    changed_tasks: set[str]
    changed_workers: set[str]
    dirty: dict[str, TaskRecord] | None
    lost: list[str]

    def _move(self, rec: TaskRecord, state: str, ts: float | None) -> bool:
        raise NotImplementedError

    def worker(self, hostname: str) -> WorkerRecord:
        rec = self.workers.get(hostname)
        if rec is None:
            rec = self.workers[hostname] = WorkerRecord(hostname)
        return rec

    def _worker(self, event: dict) -> None:
        hostname = event.get("hostname")
        if hostname is None:
            return
        hostname = printable(hostname)  # as a task's worker is kept (Fold._intern)
        rec = self.worker(hostname)
        get = event.get
        pid = get("pid")
        if rec.pid is not None and pid is not None and pid != rec.pid:
            self.lose_running(hostname, get("timestamp"))  # a new incarnation: the old one died
        rec.pid = pid
        rec.online = True
        rec.last_heartbeat = get("local_received") or get("timestamp")
        rec.freq = get("freq") or rec.freq
        rec.processed = get("processed") or rec.processed
        rec.active = get("active") or 0
        load = get("loadavg")
        if load:
            rec.load = tuple(load)
        rec.sw_ver = get("sw_ver") or rec.sw_ver
        self.changed_workers.add(hostname)

    def _worker_offline(self, event: dict) -> None:
        hostname = event.get("hostname")
        if hostname is not None:
            self.set_offline(printable(hostname), event.get("timestamp"))

    def set_offline(self, hostname: str, ts: float | None) -> None:
        rec = self.worker(hostname)
        rec.online = False
        rec.active = 0
        self.changed_workers.add(hostname)
        self.lose_running(hostname, ts)

    def lose_running(self, hostname: str, ts: float | None) -> list[str]:
        """Tasks that were running on `hostname` when it died become LOST."""
        running = [self.tasks[task_id] for state in RUNNING for task_id in self.by_state.get(state, ())]
        lost = [r for r in running if r.worker == hostname]
        for rec in lost:
            self.lose(rec, ts, f"worker {hostname} went offline while the task ran")
        ids = [r.task_id for r in lost]
        self.lost.extend(ids)
        return ids

    def lose(self, rec: TaskRecord, ts: float | None, reason: str) -> None:
        """`rec` becomes LOST for `reason` (changed, and written to history)."""
        self._move(rec, LOST, ts)
        rec.finished, rec.exception = ts, reason
        self.changed_tasks.add(rec.task_id)
        if self.dirty is not None:
            self.dirty[rec.task_id] = rec

    def expire_workers(self, now: float, skip: Callable[[str], bool] = lambda _h: False) -> list[str]:
        """Workers whose heartbeats stopped (2 x freq + 1 s, like Celery's window) go offline."""
        gone = []
        for rec in self.workers.values():
            beat = rec.last_heartbeat
            if rec.online and beat is not None and now > beat + rec.freq * 2 + 1 and not skip(rec.hostname):
                gone.append(rec.hostname)
        for hostname in gone:
            self.set_offline(hostname, now)
        return gone
