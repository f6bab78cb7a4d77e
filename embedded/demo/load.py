"""A steady, realistic load of demo tasks at a configurable rate (used by `stalk demo`, scripts, the panel).

    gen = LoadGenerator(stack.app, rate=2.0)   # tasks per second
    gen.start(); ...; gen.stop(); gen.snapshot()

No Textual here; the generator runs on its own daemon thread and only calls `send_task`."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stalk.embedded.demo import assets

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_RATE = 500.0

QUERIES = ["celery retries", "redis broker", "quota reset", "sqlite search", "trend detection", "chains groups",
           "backoff jitter", "archive enrichment", "monitoring events", "priority reserve"]


def parse_rate(text: str | float) -> float:
    """'5', '5/s', '30/m', '600/h' -> tasks per second."""
    match = _RATE.match(str(text))
    if not match:
        raise ValueError(f"rate {text!r}: expected a number of tasks per second, e.g. 2, 2/s, 30/m or 600/h")
    rate = float(match.group(1)) / _PER[match.group(2)]
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate {text!r}: must be above 0 and at most {MAX_RATE:g} tasks per second")
    return rate


@dataclass(frozen=True)
class Job:
    name: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def _videos() -> list[str]:
    return [assets.canonical_video_url(v["video_id"]) for v in assets.fixture("youtube")["videos"]]


def _pages() -> list[str]:
    return [p["url"] for p in assets.fixture("webpages")["pages"]]


def _plugins() -> list[str]:
    return [p["name"] for p in assets.plugins() if p.get("enabled", True)]


# (weight, job maker): roughly what the seeds' users run, plus the control demos.
MIX: list[tuple[int, Callable[[random.Random], Job]]] = [
    (18, lambda r: Job("demo.analyze_youtube", [r.choice(_videos())], {"priority": r.random() < 0.1})),
    (14, lambda r: Job("demo.process_webpage", [r.choice([u for u in _pages() if not u.endswith(".pdf")])])),
    (10, lambda r: Job("demo.route_content", [r.choice(_videos() + _pages())])),
    (14, lambda r: Job("demo.cache_search", [r.choice(QUERIES)], {"limit": r.choice([3, 5, 10])})),
    (5, lambda r: Job("demo.ingest_youtube_video", [r.choice(_videos())])),
    (8, lambda r: Job("demo.collect_from_plugin", [r.choice(_plugins())])),
    (3, lambda r: Job("demo.collect_and_process", [r.choice(_plugins())])),
    (1, lambda r: Job("demo.collect_all_plugins")),
    (4, lambda r: Job("demo.process_pending_items", [r.choice([50, 100, 200])])),
    (8, lambda r: Job("demo.add", [r.randint(0, 99), r.randint(0, 99)])),
    (3, lambda r: Job("demo.slow_add", [r.randint(0, 9), r.randint(0, 9)], {"seconds": round(r.uniform(0.5, 2), 1)})),
    (5, lambda r: Job("demo.flaky", [0.3])),
    (1, lambda r: Job("demo.long_running", [r.choice([5, 10, 20])])),
    (1, lambda r: Job("demo.fail")),
    (1, lambda r: Job("demo.health_check")),
]


class LoadGenerator:
    """Submits `rate` tasks per second drawn from MIX (seeded), for `duration` seconds or until stop().

    Pacing is by count: after t seconds, floor(rate * t) tasks have been sent. A stall (broker down, a
    suspended laptop) does not cause a burst afterwards: the backlog beyond two seconds is dropped."""

    def __init__(self, app: Any, rate: float, duration: float | None = None, seed: int = 7,
                 mix: list[tuple[int, Callable[[random.Random], Job]]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0")
        self.app, self.rate, self.duration, self.clock = app, rate, duration, clock
        self.mix = mix or MIX
        self._rng = random.Random(seed)
        self._weights = [w for w, _ in self.mix]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.submitted: Counter[str] = Counter()
        self.errors = 0
        self.last_error: str | None = None
        self.task_ids: list[str] = []  # the most recent ones, for scripts that wait on results
        self._started: float | None = None
        self._sent_target = 0

    def next_job(self) -> Job:
        return self._rng.choices(self.mix, weights=self._weights)[0][1](self._rng)

    def submit(self, job: Job) -> str:
        if self.app.conf.task_always_eager and job.name in self.app.tasks:
            result = self.app.tasks[job.name].apply_async(job.args, job.kwargs, **job.options)
        else:
            result = self.app.send_task(job.name, job.args, job.kwargs, **job.options)
        return result.id

    def tick(self) -> int:
        """Send what is due now; returns how many were sent."""
        now = self.clock()
        if self._started is None:
            self._started = now
        due = int(self.rate * (now - self._started)) - self._sent_target
        burst = max(1, int(self.rate * 2))
        if due > burst:  # behind by more than 2 s: skip the backlog
            self._sent_target += due - burst
            due = burst
        for _ in range(max(0, due)):
            self._send_one()
        return max(0, due)

    def _send_one(self) -> None:
        job = self.next_job()
        self._sent_target += 1
        try:
            task_id = self.submit(job)
        except Exception as exc:  # the broker may be restarting: count it and keep the pace
            with self._lock:
                self.errors += 1
                self.last_error = f"{job.name}: {type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.submitted[job.name] += 1
            self.task_ids.append(task_id)
            del self.task_ids[:-1000]

    def finished(self) -> bool:
        if self._stop.is_set():
            return True
        return self.duration is not None and self._started is not None and \
            self.clock() - self._started >= self.duration

    def run(self) -> None:
        """Blocking loop: tick, then wait a fraction of the interval between tasks."""
        wait = min(0.25, 0.5 / self.rate)
        while not self.finished():
            self.tick()
            self._stop.wait(wait)

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self.run, name="stalk-demo-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> dict:
        with self._lock:
            total = sum(self.submitted.values())
            elapsed = 0.0 if self._started is None else self.clock() - self._started
            if self.duration is not None:
                elapsed = min(elapsed, self.duration)
            return {"submitted": total, "errors": self.errors, "elapsed": elapsed, "rate": self.rate,
                    "by_task": dict(self.submitted), "last_error": self.last_error}
