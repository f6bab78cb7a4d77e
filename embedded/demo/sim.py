"""Simulated work: durations and transient failures from a seeded random source, scaled for tests.

Settings (environment wins over app.conf, so `STALK_DEMO_SPEED=20 stalk demo` works without editing code):
  STALK_DEMO_SPEED / stalk_demo_speed           work and retry waits are divided by it (default 1)
  STALK_DEMO_SEED / stalk_demo_seed             the random seed (default 7)
  STALK_DEMO_FAILURE_RATE / stalk_demo_failure_rate  chance of a transient error per attempt (default 0.05)
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from stalk.embedded.quota import failed_attempts

DEFAULTS = {"speed": 1.0, "seed": 7, "failure_rate": 0.05}


class TransientError(RuntimeError):
    """A simulated network hiccup: retried with backoff."""


def setting(app: Any, key: str) -> float:
    """A demo setting: env STALK_DEMO_<KEY>, else app.conf.stalk_demo_<key>, else the default."""
    raw = os.environ.get(f"STALK_DEMO_{key.upper()}")
    if raw in (None, ""):
        raw = app.conf.get(f"stalk_demo_{key}") if app is not None else None
    try:
        value = float(raw) if raw not in (None, "") else float(DEFAULTS[key])
    except (TypeError, ValueError):
        value = float(DEFAULTS[key])
    return max(value, 0.001) if key == "speed" else value


def rng_for(task: Any, *salt: Any) -> random.Random:
    """One attempt's random source: the same seed, task id and retry count give the same draws."""
    request = task.request
    seed = int(setting(task.app, "seed"))
    return random.Random(f"{seed}:{task.name}:{request.id}:{request.retries or 0}:{':'.join(map(str, salt))}")


def work(task: Any, rng: random.Random, low: float, high: float) -> float:
    """Sleep a random duration in [low, high] seconds, divided by the speed; returns the time slept."""
    seconds = rng.uniform(low, high) / setting(task.app, "speed")
    time.sleep(seconds)
    return seconds


def maybe_fail(task: Any, rng: random.Random, what: str, rate: float | None = None) -> None:
    """Raise TransientError with the configured (or given) probability."""
    rate = setting(task.app, "failure_rate") if rate is None else rate
    if rng.random() < rate:
        raise TransientError(f"{what}: simulated transient error (attempt {task.request.retries + 1})")


def backoff(task: Any, rng: random.Random, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with jitter: base * 2**retries, capped, times 0.5..1.0, divided by the speed."""
    ceiling = min(cap, base * 2 ** failed_attempts(task.request))
    return ceiling * rng.uniform(0.5, 1.0) / setting(task.app, "speed")


def progress(task: Any, current: int, total: int, status: str) -> None:
    """PROGRESS state with the meta the panel shows; a no-op when called outside a task run."""
    if task.request.id:
        task.update_state(state="PROGRESS", meta={"current": current, "total": total, "status": status})
