"""Flower's Prometheus metrics (its names, types and labels, as flower/events.py defines them), so its
Grafana dashboard and alert rules work on Stalk.

Task metrics are counted from the store's events (EventStore.tap: the ingesting thread, under the
store's lock), in plain dicts: a few dict operations per event, no lock of their own (the store's
serialises the writers; a scrape copies each dict in one C call). The worker gauges are read from the
store's worker records at scrape time (online and active, as Flower sets them from worker events; the
store also turns a worker whose heartbeats stopped offline).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from stalk.embedded.safe_text import printable

if TYPE_CHECKING:
    from prometheus_client import Metric

    from stalk.embedded.events import EventStore, TaskRecord

BUCKETS: tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)  # Flower's default task_runtime_metric_buckets
BOUNDS = BUCKETS[:-1]  # the last is +Inf
#: Series of flower_events_total at most (worker x type x task): every publishing process has a hostname of
#: its own (task-sent), and event sources may name anything; further ones are counted as dropped.
MAX_SERIES = 20_000
FINISHED_KINDS = frozenset({"task-succeeded", "task-failed"})
UNSTARTED_END = frozenset({"task-revoked", "task-rejected"})


class FlowerCounts:
    """The event-driven half: `tap` is handed every event the store applies. Keys hold the events' own
    hostnames (made printable at scrape time) and the records' names (interned by the store)."""

    def __init__(self) -> None:
        self.events: dict[tuple[Any, Any, str | None], int] = {}  # (worker, type, task) -> count
        self.runtime: dict[tuple[Any, str | None], list[float]] = {}  # (worker, task) -> bucket counts..., sum
        self.prefetch_time: dict[tuple[Any, str | None], float] = {}
        self.prefetched: dict[tuple[Any, str | None], int] = {}
        self.dropped = 0  # events not counted: flower_events_total had MAX_SERIES series already

    def tap(self, event: dict, rec: TaskRecord | None) -> None:
        # the hot path (every event the store applies): a few dict operations, calls only where rare
        if rec is None:
            return  # a worker's event: the worker gauges are read from the store at scrape time
        get = event.get
        kind = get("type")
        host = get("hostname")
        name = rec.name
        key = (host, kind, name)
        events = self.events
        try:
            count = events.get(key)
        except TypeError:  # an unhashable hostname: not a Celery worker's event
            return
        if count is None:
            if not (type(kind) is str and kind.startswith("task-")):
                return  # Stalk's own events about a task (stalk-routed)
            if len(events) >= MAX_SERIES:
                self.dropped += 1
                return
            count = 0
        events[key] = count + 1
        if kind == "task-succeeded":
            runtime = get("runtime")
            if runtime:
                self._observe((host, name), runtime)
        if rec.eta or not rec.received:
            return  # Flower: prefetch metrics only for tasks without an ETA
        if kind == "task-started":
            if rec.started:
                pair = (host, name)
                waited = rec.started - rec.received
                self.prefetch_time[pair] = waited if waited > 0.0 else 0.0
                self.prefetched[pair] = self.prefetched.get(pair, 0) - 1
        elif kind == "task-received":
            pair = (host, name)
            self.prefetched[pair] = self.prefetched.get(pair, 0) + 1
        elif kind in FINISHED_KINDS:
            if rec.started:
                self.prefetch_time[(host, name)] = 0.0
        elif kind in UNSTARTED_END and not rec.started:
            pair = (host, name)
            self.prefetched[pair] = self.prefetched.get(pair, 0) - 1

    def _observe(self, pair: tuple[Any, str | None], runtime: object) -> None:
        if type(runtime) is not float and type(runtime) is not int:
            return
        counts = self.runtime.get(pair)
        if counts is None:
            counts = self.runtime[pair] = [0.0] * (len(BUCKETS) + 1)
        counts[bisect_left(BOUNDS, runtime)] += 1  # le: a value on a bound counts in that bucket
        counts[-1] += runtime


class FlowerCollector(Collector):
    """Flower's six metrics, built at scrape time from `counts` and the store's workers."""

    def __init__(self, counts: FlowerCounts, source: Any) -> None:
        self.counts = counts
        self.source = source  # a Stack (its store read at scrape time: the API starts before it), or a store

    @property
    def store(self) -> EventStore | None:
        return getattr(self.source, "events", self.source)

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        events = CounterMetricFamily("flower_events", "Number of events", labels=["worker", "type", "task"])
        for (worker, kind, name), n in summed(counts.events.copy()).items():
            events.add_metric([worker, kind, name], n)
        yield events
        yield runtime_family(counts.runtime.copy())
        prefetch = GaugeMetricFamily("flower_task_prefetch_time_seconds",
                                     "The time the task spent waiting at the celery worker to be executed.",
                                     labels=["worker", "task"])
        for pair, seconds in labelled(counts.prefetch_time.copy()).items():
            prefetch.add_metric(list(pair), seconds)
        yield prefetch
        prefetched = GaugeMetricFamily("flower_worker_prefetched_tasks",
                                       "Number of tasks of given type prefetched at a worker", labels=["worker", "task"])
        for pair, n in summed(counts.prefetched.copy()).items():
            prefetched.add_metric(list(pair), n)
        yield prefetched
        yield from self._workers()
        yield CounterMetricFamily("stalk_metrics_dropped_events", f"Task events not counted in flower_events_total: "
                                  f"it had {MAX_SERIES} series already", value=counts.dropped)

    def _workers(self) -> Iterator[Metric]:
        online = GaugeMetricFamily("flower_worker_online", "Worker online status", labels=["worker"])
        active = GaugeMetricFamily("flower_worker_number_of_currently_executing_tasks",
                                   "Number of tasks currently executing at a worker", labels=["worker"])
        for rec in self.store.workers() if self.store is not None else ():
            if rec.last_heartbeat is None and not rec.online:
                continue  # declared by the stack, never heard from: Flower has no series for it yet
            online.add_metric([rec.hostname], 1 if rec.online else 0)
            active.add_metric([rec.hostname], rec.active)
        yield online
        yield active


def runtime_family(runtime: dict[tuple[Any, str | None], list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily("flower_task_runtime_seconds", "Task runtime", labels=["worker", "task"])
    merged: dict[tuple[str, ...], list[float]] = {}
    for key, counts in runtime.items():
        into = merged.setdefault(labels_of(key), [0.0] * len(counts))
        for i, n in enumerate(list(counts)):
            into[i] += n
    for pair, counts in merged.items():
        cumulative, buckets = 0.0, []
        for bound, n in zip(BUCKETS, counts[:-1], strict=True):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric(list(pair), buckets, counts[-1])
    return family


def labels_of(key: tuple) -> tuple[str, ...]:
    """A counting key as label values: the hostname made printable (it came from an event), None as ""."""
    host, *rest = key
    return (printable(host) if isinstance(host, str) else "", *(value or "" for value in rest))


def summed(values: dict[Any, int]) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for key, n in values.items():
        labels = labels_of(key)
        out[labels] = out.get(labels, 0) + n
    return out


def labelled(values: dict[Any, float]) -> dict[tuple[str, ...], float]:
    return {labels_of(key): value for key, value in values.items()}
