"""Webhook faults: the receiver down for a burst of completions, then up; Stalk SIGKILLed mid-delivery and
started again on the same data dir. Every notification arrives, in order per task; an acknowledged one
never again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from stalk.embedded import Stack
from stalk.embedded.webhooks import Outbox, outbox_path
from tests.conftest import ROOT, clean_env, make_config, stalk_cmd, wait_until
from tests.test_webhooks import APP, Receiver

BURST = 1000


def in_order_per_task(received: list) -> bool:
    """Each task's deliveries arrived in the order they were enqueued (outbox ids rise)."""
    seen: dict[str, list[int]] = defaultdict(list)
    for r in received:
        if r.delivery not in seen[r.payload["task_id"]]:
            seen[r.payload["task_id"]].append(r.delivery)
    return all(ids == sorted(ids) for ids in seen.values())


@pytest.mark.fault
def test_a_receiver_down_for_a_burst_gets_every_notification_once(tmp_path: Path) -> None:
    receiver = Receiver()  # down: connection refused
    config = make_config(tmp_path / "data", broker={"mode": "eager"}, app=APP, webhooks=[
        {"url": receiver.url(), "tasks": ["ev.add", "ev.sleep"], "states": ["STARTED", "SUCCESS"],
         "backoff_max": 1}])
    with Stack(config) as stack:
        started = time.monotonic()
        adds = [stack.app.tasks["ev.add"].delay(i, i).id for i in range(BURST)]
        slow = [stack.app.tasks["ev.sleep"].delay(0.25).id for _ in range(4)]  # STARTED, then SUCCESS
        burst_s = time.monotonic() - started
        outbox = stack.webhooks.outbox if stack.webhooks else None
        assert outbox is not None
        # every SUCCESS and the sleeps' STARTED (an add's STARTED too when a change batch fell between its
        # start and its end: one batch per ~0.1 s shows the state a task has then)
        assert wait_until(lambda: sum(outbox.counts()[receiver.url()].values()) >= BURST + 2 * len(slow), timeout=20)
        time.sleep(0.5)
        expected = sum(outbox.counts()[receiver.url()].values())
        assert outbox.counts()[receiver.url()]["delivered"] == 0
        receiver.up()
        try:
            up = time.monotonic()
            assert wait_until(lambda: len(receiver.snapshot()) >= expected, timeout=60)
            drained_s = time.monotonic() - up
            time.sleep(1.0)
            got = receiver.snapshot()
            assert len(got) == expected  # none twice
            assert len({r.delivery for r in got}) == expected
            assert {r.payload["task_id"] for r in got} == set(adds) | set(slow)
            assert {r.payload["task_id"] for r in got if r.payload["state"] == "SUCCESS"} == set(adds) | set(slow)
            for task_id in slow:
                states = [r.payload["state"] for r in got if r.payload["task_id"] == task_id]
                assert states == ["STARTED", "SUCCESS"]
            assert in_order_per_task(got)
            assert outbox.counts()[receiver.url()] == {"delivered": expected, "pending": 0, "failing": 0}
        finally:
            receiver.down()
    print(f"\nburst of {BURST} completions enqueued in {burst_s:.1f} s; delivered {expected} in {drained_s:.1f} s "
          "after the receiver came back")


KILLED_STACK = """
import json, sys, time
from stalk.embedded import Stack
from stalk.embedded.config import load_config
flags = json.loads(sys.argv[1])
stack = Stack(load_config(flags, environ={"STALK_CONFIG": ""})).start()
ids = [stack.app.tasks["ev.add"].delay(i, 1).id for i in range(int(sys.argv[2]))]
print(json.dumps(ids), flush=True)
time.sleep(600)
"""


@pytest.mark.fault
@pytest.mark.procs
def test_stalk_sigkilled_mid_delivery_loses_none_and_never_resends_an_acknowledged_one(tmp_path: Path) -> None:
    count = 300
    receiver = Receiver(delay=0.02).up()  # slow: the kill lands mid-delivery
    data_dir = tmp_path / "data"
    flags = {"data_dir": str(data_dir), "broker": {"mode": "eager"}, "app": APP, "flower": {"enabled": False},
             "webhooks": [{"url": receiver.url(), "backoff_max": 1}]}
    try:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_STACK, json.dumps(flags), str(count)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "STALK_CONFIG": ""})
        try:
            ids = json.loads(proc.stdout.readline() if proc.stdout else "[]")
            assert len(ids) == count
            assert wait_until(lambda: len(receiver.snapshot()) >= 50, timeout=30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()
        before = receiver.snapshot()
        assert len(before) < count, "the kill came after every delivery: nothing left to test"
        outbox = Outbox(outbox_path(data_dir / "state"), create=False)
        try:
            acked = {row.id for row in outbox.recent(10_000) if row.acked_at is not None}
            rows = outbox.recent(10_000)
        finally:
            outbox.close()
        assert len(rows) == count, len(rows)  # every completion was enqueued before the kill
        assert acked and len(acked) >= len(before) - 1, (len(acked), len(before))  # all but one in flight
        offline = subprocess.run(stalk_cmd("webhooks", "--data-dir", str(data_dir), "--json", "--limit", "1000"),
                                 capture_output=True, text=True, env=clean_env(), timeout=60)
        assert offline.returncode == 0, offline.stderr
        listed = json.loads(offline.stdout)["deliveries"]  # read from the outbox file: no stack answers
        assert {r["id"] for r in listed if r["status"] == "delivered"} == acked and len(listed) == count
        mark = len(before)

        with Stack(make_config(data_dir, **{k: v for k, v in flags.items() if k != "data_dir"})) as stack:
            assert wait_until(lambda: {r.payload["task_id"] for r in receiver.snapshot()} >= set(ids), timeout=60)
            time.sleep(1.0)
            assert stack.webhooks is not None
            assert stack.webhooks.outbox.counts()[receiver.url()]["delivered"] == count
        after = receiver.snapshot()[mark:]
        assert not {r.delivery for r in after} & acked  # acknowledged before the kill: never again
        deliveries = [r.delivery for r in receiver.snapshot()]
        twice = {d for d in deliveries if deliveries.count(d) > 1}
        assert len(twice) <= 1  # at most the one in flight when the kill came (sent, not yet marked)
        assert {r.payload["task_id"] for r in receiver.snapshot()} == set(ids)
        assert in_order_per_task(receiver.snapshot())
        print(f"\nkilled after {mark} of {count} received ({len(acked)} acknowledged); "
              f"{len(after)} more after the restart, {len(twice)} delivered twice")
    finally:
        receiver.down()


@pytest.mark.fault
def test_a_hook_that_is_down_does_not_hold_up_another(tmp_path: Path) -> None:
    """Hook A's backlog (its receiver down) comes first in the outbox: hook B's later rows still go at once."""
    down, up = Receiver(), Receiver().up()
    config = make_config(tmp_path / "data", broker={"mode": "eager"}, app=APP, webhooks=[
        {"url": down.url(), "tasks": ["ev.add"]}, {"url": up.url(), "tasks": ["ev.boom"], "states": ["FAILURE"]}])
    try:
        with Stack(config) as stack:
            for i in range(400):
                stack.app.tasks["ev.add"].delay(i, 0)
            outbox = stack.webhooks.outbox if stack.webhooks else None
            assert outbox is not None
            assert wait_until(lambda: outbox.counts().get(down.url(), {}).get("pending", 0) >= 300, timeout=20)
            booms = {stack.app.tasks["ev.boom"].delay(str(i)).id for i in range(5)}
            assert wait_until(lambda: {r.payload["task_id"] for r in up.snapshot()} == booms, timeout=10)
            assert down.snapshot() == []
    finally:
        up.down()
