"""Eager mode: the store is fed from Celery's signals in this process (no broker, no worker)."""

from __future__ import annotations

from stalk.embedded.events import EventStore


def test_eager_tasks_reach_the_store(running_stack):
    stack = running_stack(broker={"mode": "eager"}, app="tests.apps.events_app:eager_app")
    store = stack.events
    assert isinstance(store, EventStore)
    ok = stack.app.tasks["ev.add"].delay(4, 5)
    rec = store.wait_for(ok.id, {"SUCCESS"}, timeout=5)
    assert rec is not None and (rec.name, rec.args, rec.result) == ("ev.add", "(4, 5)", "9")
    assert rec.worker.startswith("eager@") and rec.runtime is not None

    bad = stack.app.tasks["ev.boom"].delay("nope")
    rec = store.wait_for(bad.id, {"FAILURE"}, timeout=5)
    assert rec is not None and "nope" in rec.exception and "Traceback" in rec.traceback

    progress = stack.app.tasks["ev.progress"].delay(3, 0)
    rec = store.wait_for(progress.id, {"SUCCESS"}, timeout=5)
    assert rec is not None and rec.progress == {"current": 3, "total": 3, "status": "step 3"}

    flaky = stack.app.tasks["ev.flaky"].delay(1)
    rec = store.wait_for(flaky.id, {"SUCCESS"}, timeout=5)
    assert rec is not None and rec.retries >= 1 and rec.attempts
    assert store.counts_by_state()["SUCCESS"] >= 3
