"""In a `stalk worker` child: what a broker outage makes Celery repeat, folded to one line per kind.

- The result backend's retries ("Failed operation _store_result. Retrying 19 more times." and a whole
  traceback, once per retry, in every pool process) become one line per operation and burst, with the
  count and the last error, written once the burst has been quiet for `QUIET` s (every `EVERY` s while it
  lasts).
- kombu's "Restoring N unacknowledged message(s)" is said when the restore is only attempted (it fails
  while the broker is down, and the line then claims what did not happen): it is written only once the
  restore has worked, else one line says it could not be done (embedded/patches/kombu_restore_outcome.py).
- "Skipping prefetch count reduction after connection restart ..." (Celery's internals) is dropped.
- Celery's CPendingDeprecationWarning (about a Celery 6 default, printed with its source line at every
  connection loss) is not shown: the setting it is about is Stalk's to choose, not the user's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass

QUIET = 3.0  # s without a repeat: the burst is over, its line is written
EVERY = 30.0  # s: a burst still going writes its line this often
RETRY_LOGGER = "celery.backends.base"
RETRY_PREFIX = "Failed operation"
DROPPED = (  # (logger, message prefix)
    ("kombu.transport.virtual.base", "Restoring "),  # said before the attempt: see the module's docstring
    # at every connection loss, about Celery's internals (per-consumer QoS): nothing to act on
    ("celery.worker.consumer.consumer", "Skipping prefetch count reduction"),
)


@dataclass
class _Burst:
    logger: str
    level: int
    first: float
    last: float
    count: int = 0
    reason: str = ""


def _reason(record: logging.LogRecord) -> str:
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None:
        return "no error given"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]


class RetryFold(logging.Filter):
    """On the result backend's logger: each retry is counted, not written; `flush` writes the bursts."""

    def __init__(self, quiet: float = QUIET, every: float = EVERY) -> None:
        super().__init__()
        self.quiet = quiet
        self.every = every
        self._reset()

    def _reset(self) -> None:  # also in a forked pool process: the parent's lock and thread are not ours
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._bursts: dict[str, _Burst] = {}
        self._flusher: threading.Thread | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(RETRY_PREFIX):
            return True
        if os.getpid() != self._pid:
            self._reset()
        operation = str(record.args[0]) if isinstance(record.args, tuple) and record.args else "?"
        now = time.monotonic()
        with self._lock:
            burst = self._bursts.setdefault(operation, _Burst(record.name, record.levelno, now, now))
            burst.count += 1
            burst.last = now
            burst.reason = _reason(record)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="stalk-log-fold", daemon=True)
                self._flusher.start()
        return False

    def _flush_loop(self) -> None:
        while True:
            time.sleep(min(1.0, self.quiet))
            with self._lock:
                self.flush(time.monotonic())
                if not self._bursts:
                    self._flusher = None
                    return

    def flush(self, now: float, force: bool = False) -> None:
        """Write the bursts that are over (or have gone on `every` s); the caller holds the lock."""
        for operation, burst in list(self._bursts.items()):
            over = force or now - burst.last >= self.quiet
            if not (over or now - burst.first >= self.every):
                continue
            logging.getLogger(burst.logger).log(
                burst.level, "Result backend: %s failed %d time(s) in %.0f s, retried (last error: %s)",
                operation, burst.count, burst.last - burst.first, burst.reason)
            if over:
                del self._bursts[operation]
            else:
                burst.first, burst.count = now, 0


class _Drop(logging.Filter):
    """Records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def fold_worker_noise() -> RetryFold:
    """Install the folding in this worker process (before Celery starts it; pool processes inherit it)."""
    from celery.signals import celeryd_after_setup

    fold = RetryFold()
    logging.getLogger(RETRY_LOGGER).addFilter(fold)
    for logger, prefix in DROPPED:
        logging.getLogger(logger).addFilter(_Drop(prefix))
    from stalk.embedded.patches.kombu_restore_outcome import say_restore_outcome

    say_restore_outcome()
    celeryd_after_setup.connect(_ignore_pending_deprecations, weak=False)
    return fold


def _ignore_pending_deprecations(**_kwargs: object) -> None:
    """After Celery's logging setup, which asks to show CPendingDeprecationWarning always (the worker's
    celeryd_after_setup comes after it and before the pool forks)."""
    from celery.exceptions import CPendingDeprecationWarning

    warnings.filterwarnings("ignore", category=CPendingDeprecationWarning)
