"""Stalk's own metrics, read at scrape time from the stack's state: queue depths (the broker, bounded by
a short timeout), quotas (the ledger), supervised processes, the broker and its durability, task states,
the [[alerts]] rules firing."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from stalk.embedded.events.states import LOST
from stalk.embedded.quota import QuotaError, QuotaLedger, QuotaStatus
from stalk.embedded.service.metrics.probe import BoundedCall

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client import Metric

    from stalk.embedded.stack import Stack

BROKER_TIMEOUT = 1.0  # s a scrape waits for the broker's queue depths
LEDGER_TIMEOUT = 1.0  # s a scrape waits for the quota db when a writer holds it (a migration)


class QuotaReader:
    """The stack's quota ledger, opened when its file exists (again when the file is another one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ledger: QuotaLedger | None = None
        self._inode: tuple[int, int] | None = None

    def statuses(self) -> list[QuotaStatus]:
        try:
            stat = os.stat(self.path)
        except OSError:
            self.close()
            return []
        inode = (stat.st_dev, stat.st_ino)
        with self._lock:
            if self._ledger is None or self._inode != inode:
                self._drop()
                try:
                    self._ledger = QuotaLedger(self.path, create=False, busy_timeout=LEDGER_TIMEOUT)
                except QuotaError:
                    return []
                self._inode = inode
            ledger = self._ledger
        try:
            return ledger.statuses()
        except QuotaError:
            return []

    def _drop(self) -> None:
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                self._ledger.close()
        self._ledger, self._inode = None, None

    def close(self) -> None:
        with self._lock:
            self._drop()


class StalkCollector(Collector):
    def __init__(self, stack: Stack, broker_timeout: float = BROKER_TIMEOUT) -> None:
        self.stack = stack
        self.quotas = QuotaReader(stack.paths.quota_db)
        self.depths = BoundedCall(self._queue_depths, broker_timeout, "stalk-metrics-broker")

    def _queue_depths(self) -> dict[str, int]:
        control = self.stack.control
        return control.queue_depths() if control is not None else {}

    def collect(self) -> Iterator[Metric]:
        yield from self._broker_and_queues()
        yield from self._quotas()
        yield from self._processes()
        yield from self._tasks()
        yield from self._alerts()

    def _broker_and_queues(self) -> Iterator[Metric]:
        broker = self.stack.broker
        mode = broker.mode if broker is not None else self.stack.mode
        info = GaugeMetricFamily("stalk_broker_info", "The stack's broker: its mode and what it means for "
                                 "durability (always 1)", labels=["mode", "durability"])
        info.add_metric([mode, broker.durability if broker is not None else ""], 1)
        yield info
        depths: dict[str, int] | None = {}
        if mode != "eager":  # eager: no broker, tasks run in the stack's process
            depths, _problem = self.depths()
        up = GaugeMetricFamily("stalk_broker_up", "1 when the broker answered this scrape's queue-depth call "
                               f"within {self.depths.timeout:g} s", labels=["mode"])
        up.add_metric([mode], 0 if depths is None else 1)
        yield up
        queue = GaugeMetricFamily("stalk_queue_depth", "Messages waiting in the queue (not those a worker "
                                  "holds)", labels=["queue"])
        for name, n in sorted((depths or {}).items()):
            queue.add_metric([name], n)
        yield queue

    def _quotas(self) -> Iterator[Metric]:
        families = {key: GaugeMetricFamily(f"stalk_quota_{key}_units", text, labels=["quota"]) for key, text in (
            ("limit", "The quota's daily limit"), ("used", "Units used in the current quota-day"),
            ("remaining", "Units still usable by non-priority calls today"),
            ("reserve", "Units of the priority reserve still unused today"),
            ("pending", "Reservations not settled yet (running, or lost with their worker)"))}
        denied = CounterMetricFamily("stalk_quota_denied_calls", "Calls denied in the current quota-day "
                                     "(restarts at each reset)", labels=["quota"])
        for status in self.quotas.statuses():
            for key, value in (("limit", status.limit), ("used", status.used), ("remaining", status.remaining),
                               ("reserve", status.reserved), ("pending", status.pending)):
                families[key].add_metric([status.name], value)
            denied.add_metric([status.name], status.denied)
        yield from families.values()
        yield denied

    def _processes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("stalk_process_up", "1 when the supervised process is up (a worker answers "
                               "pings, the broker or beat runs)", labels=["process", "role"])
        restarts = CounterMetricFamily("stalk_process_restarts", "Restarts of the supervised process",
                                       labels=["process", "role"])
        for info in self.stack.processes():
            up.add_metric([info.name, info.role], 1 if info.state.up else 0)
            restarts.add_metric([info.name, info.role], info.restarts)
        yield up
        yield restarts

    def _tasks(self) -> Iterator[Metric]:
        events = self.stack.events
        counts = events.counts_by_state() if events is not None else {}
        tasks = GaugeMetricFamily("stalk_tasks", "Tasks the event store holds, by state", labels=["state"])
        for state, n in sorted(counts.items()):
            tasks.add_metric([state], n)
        yield tasks
        yield GaugeMetricFamily("stalk_tasks_lost", "Tasks the store holds as LOST: their worker died while "
                                "they ran (or the embedded broker's queue went with Stalk)", value=counts.get(LOST, 0))

    def _alerts(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily("stalk_alert_firing", "1 while the [[alerts]] rule fires (0: ok, or not "
                                   "measured yet)", labels=["rule"])
        alerts = getattr(self.stack, "alerts", None)
        for rule, on in sorted((alerts.firing() if alerts is not None else {}).items()):
            firing.add_metric([rule], 1 if on else 0)
        yield firing

    def close(self) -> None:
        self.quotas.close()
