"""Patches Celery's Redis result backend in Stalk's own client: a send no longer subscribes to the task's
result channel.

Overrides `app._get_backend` (celery/app/base.py, private: the `app.backend` property calls it once per
thread, the backend not being thread-safe) with a wrapper on the instance that sets `on_task_call`
(celery/backends/redis.py `RedisBackend.on_task_call`, called by `Celery.send_task` for every send whose
result is not ignored) on each Redis backend it builds to a no-op. Relies on every waiter subscribing
itself and then reading the stored result (`AsyncResult.get` and `GroupResult.get`/`join_native` call
`add_pending_result`, which subscribes, then `on_wait_for_pending` reads the task's key: a result stored
before the subscription is found there), and on `ResultConsumer.cancel_for` unsubscribing only keys it is
subscribed to. Stalk's own code reads results with `get` (the stack API's `wait`, `stalk submit --wait`) or
by polling the state (the Flower-compatible API's `apply` and `GET /api/task/result`); never `then`, which
does not read the key. Installed by stalk.embedded.stack on Stalk's own client app, undone at stop.

Written against Celery 5.7.0 and redis-py 8.2.0 (pyproject.toml pins those minors);
tests/test_upstream_canaries.py checks the names above and that a result stored before `get` subscribed is
still found.

What it buys: the subscription is a SUBSCRIBE on the backend's pub/sub connection per send (and an
UNSUBSCRIBE when the AsyncResult is dropped), ~7% of the stack process's samples under Flower async-apply
load (bench/RESULTS.md 2026-12-08, "per-send costs"); and the results of tasks nobody waits for no longer
pile up unread on that connection.

If removed: each send subscribes again (the CPU above); results still arrive the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend


def _no_subscription(producer: Any, task_id: str) -> None:
    """RedisBackend.on_task_call's signature: a waiter subscribes when it starts to wait."""


def skip_send_subscription(app: Celery) -> Callable[[], None]:
    """Wrap `app._get_backend`; returns what restores it (backends built meanwhile keep the no-op)."""
    get_backend = app._get_backend

    def _get_backend() -> Any:
        backend = get_backend()
        if isinstance(backend, RedisBackend):
            backend.on_task_call = _no_subscription
        return backend

    app._get_backend = _get_backend

    def restore() -> None:
        vars(app).pop("_get_backend", None)

    return restore
