"""Fault injection on the broker: what `appendfsync everysec` loses to a SIGKILL, and a broker that is
stopped and started again under a running stack (submissions refused clearly, nothing queued lost)."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections import Counter

import pytest

from stalk.embedded import ProcState
from stalk.embedded.control import SubmitError
from stalk.embedded.events import EventStore
from stalk.embedded.events.reconcile import reconcile

from .apps.fault_app import runs_file
from .conftest import broker_redis, wait_until
from .test_faults import (
    VISIBILITY,
    burst_across_broker_kill,
    collect_while_up,  # noqa: F401 (autouse)
    fault_stack,
    redelivered_ids,
    runs,
)

pytestmark = [pytest.mark.procs, pytest.mark.fault, pytest.mark.xdist_group("faults")]


def file_runs(stack) -> Counter:
    """Runs as the workers wrote them to the data dir (independent of what the broker kept)."""
    path = runs_file(stack.paths.data_dir)
    lines = path.read_text().split() if path.exists() else []
    return Counter(line.split(":")[0] for line in lines)


def settle(stack, quiet: float, limit: float = 90.0) -> Counter:
    """The runs once no new one was recorded for `quiet` seconds (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    last, seen_at = file_runs(stack), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - seen_at < quiet:
        time.sleep(0.5)
        now = file_runs(stack)
        if now != last:
            last, seen_at = now, time.monotonic()
    return last


def results_missing(stack, ids: list[str]) -> int:
    backend = broker_redis(stack.broker.backend_url)
    values = backend.mget([f"celery-task-meta-{i}" for i in ids])
    return sum(v is None for v in values)


def test_sigkill_broker_with_everysec_reports_what_is_lost(running_stack, record_property):
    """`everysec` (the default) may drop the last second of writes. Not asserted: recorded as user
    properties (JUnit XML) and printed, so the cost of the default is known."""
    stack = fault_stack(running_stack, broker={"appendfsync": "everysec"})
    accepted = burst_across_broker_kill(stack)
    counts = settle(stack, quiet=VISIBILITY + 4)  # a lost ack shows as a second run after the visibility timeout
    report = {
        "everysec_accepted": len(accepted),
        "everysec_never_ran": len(set(accepted) - set(counts)),
        "everysec_ran_twice": sum(1 for i in accepted if counts[i] > 1),
        "everysec_results_lost": results_missing(stack, [i for i in accepted if counts[i]]),
        "everysec_journal_republished": stack.journal.republished,
    }
    for name, value in report.items():
        record_property(name, value)
    print("appendfsync everysec after a broker SIGKILL:", report)
    assert report["everysec_accepted"] >= 300


def test_broker_stopped_and_started_loses_nothing(running_stack):
    """Broker stopped: a submit is refused with one clear error. Started again: every task queued before
    runs (a second run only as a redelivery), new submissions work and the event store follows, also for
    a task that finished before the event receiver had reconnected (caught up from the result backend)."""
    stack = fault_stack(running_stack)
    control = stack.control
    before = [control.submit({"name": "faults.sleepy", "args": [0.2]}) for _ in range(30)]
    wait_until(lambda: sum(runs(stack).values()) >= 4)
    gc.collect()  # nothing of the client's may be freed while the broker is away: celery's
    gc.disable()  # AsyncResult.__del__ would try (and fail) to unsubscribe from it
    try:
        stack.stop_process("broker")
        wait_until(lambda: stack.process("broker").state is ProcState.STOPPED)
        with pytest.raises(SubmitError, match="broker unreachable") as refused:
            control.submit({"name": "faults.noop", "args": [1]})
        assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value)
        stack.start_process("broker")
        wait_until(lambda: stack.process("broker").state is ProcState.RUNNING)
    finally:
        gc.enable()
    after = control.submit({"name": "faults.noop", "args": [2]})
    assert after.get(timeout=60) == 2
    ids = {r.id for r in before}
    try:
        wait_until(lambda: ids <= set(runs(stack)), timeout=120, every=0.5)
    except AssertionError:
        missing = ids - set(runs(stack))
        raise AssertionError(f"{len(missing)} of {len(ids)} tasks queued before the broker stop never ran; "
                             f"broker {stack.process('broker').state}, workers "
                             f"{[(p.name, p.state) for p in stack.processes()]}") from None
    twice = {task_id for task_id, n in runs(stack).items() if n > 1}
    # A second run is reported: kombu's redelivered flag, or the publish journal's re-publish of a task
    # whose result the stopped broker had not stored yet (both in the logs).
    reported = redelivered_ids(stack) | set(stack.journal.republished_ids)
    assert twice <= reported, "a task ran twice without being reported as redelivered or re-published"
    assert stack.events.wait_for(after.id, "SUCCESS", timeout=30) is not None, "the event receiver did not reconnect"
    unfinished = {i: (stack.events.get(i).state if stack.events.get(i) else None) for i in ids
                  if stack.events.wait_for(i, "SUCCESS", timeout=20) is None}
    assert not unfinished, f"the event store never saw these finish: {unfinished}"
    deaf = EventStore()  # the race above made certain: published here, and every event of it went unheard
    deaf.note_published(after.id, None, None)
    assert reconcile(deaf.unfinished(), stack.app.backend, deaf.ingest) == 1
    assert deaf.get(after.id).state == "SUCCESS"
    del before, after
    gc.collect()  # results freed after the broker is gone would retry unsubscribing from it


def test_a_worker_rides_out_a_broker_kill_and_acks_the_task_that_ran_through_it(running_stack):
    """Celery 5.7 on stock kombu: a worker holding an unacked message when its broker dies calls the
    AttributeError raised while closing the old channel unrecoverable and exits, and the task that ran
    on through the outage stays unacked until the visibility timeout runs it again. Stalk's transport
    keeps the old channel's connection parameters: the worker reconnects and acks that task once."""
    stack = fault_stack(running_stack, broker={"appendfsync": "always"})
    worker = stack.process("worker:faults")
    result = stack.app.send_task("faults.sleepy", (6,), queue="faults")
    assert stack.events.wait_for(result.id, "STARTED", timeout=30) is not None
    os.kill(stack.process("broker").pid, signal.SIGKILL)
    wait_until(lambda: stack.process("broker").restarts == 1)
    wait_until(lambda: stack.process("broker").state is ProcState.RUNNING)
    assert result.get(timeout=60) == result.id
    again = stack.process("worker:faults")
    assert (again.pid, again.restarts, again.state) == (worker.pid, 0, ProcState.READY), again
    broker = broker_redis(stack.broker.broker_url)
    wait_until(lambda: broker.hlen("unacked") == 0, timeout=20)  # acked: nothing left to deliver again
    assert runs(stack)[result.id] == 1
    assert stack.app.send_task("faults.sleepy", (0.1,), queue="faults").get(timeout=30)
