"""History without gaps around a broker restart: tasks a plain client sent while the event receiver was
away (so no event of theirs was heard) are in `stalk tasks` while the stack runs, finished with their
results or waiting in their queue, caught up from the result backend and the broker's queues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from stalk.embedded import ProcState
from stalk.embedded.events.receiver import EventReceiver

from .conftest import clean_env, stalk_cmd, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("events")]

APP = "tests.apps.events_app:app"
CLIENT = """
import json, os, sys
import celery
client = celery.Celery(broker=os.environ["CELERY_BROKER_URL"])
ran = [client.send_task("ev.add", (i, i), queue="events").id for i in range(5)]
waiting = [client.send_task("ev.add", (i, 0), queue="nobody").id for i in range(2)]
print(json.dumps([ran, waiting]))
"""


def cut_off(stack) -> threading.Event:
    """Keep the stack's event receiver away from the broker until the returned event is set."""
    receiver = next(s for s in stack.events._sources if isinstance(s, EventReceiver))
    back, consume = threading.Event(), receiver._consume

    def cut() -> None:
        if not back.is_set():
            raise ConnectionError("cut off by the test")
        consume()

    receiver._consume = cut
    return back


def stalk(stack, *args: str) -> str:
    out = subprocess.run(stalk_cmd(*args, "--data-dir", str(stack.paths.data_dir)), capture_output=True,
                         text=True, env=clean_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def history(stack) -> dict[str, dict]:
    return {row["task_id"]: row for row in json.loads(stalk(stack, "tasks", "--json", "--limit", "1000"))}


def test_tasks_sent_while_the_receiver_was_away_reach_history_while_the_stack_runs(running_stack):
    stack = running_stack(app=APP, broker={"mode": "redis"}, beat=False)
    back = cut_off(stack)
    os.kill(stack.process("broker").pid, signal.SIGKILL)
    wait_until(lambda: stack.process("broker").restarts == 1 and stack.process("broker").state is ProcState.RUNNING,
               timeout=30)
    env = clean_env(**json.loads(stalk(stack, "env", "--json")))
    sent = subprocess.run([sys.executable, "-c", CLIENT], capture_output=True, text=True, env=env, timeout=60)
    assert sent.returncode == 0, sent.stderr
    ran, waiting = json.loads(sent.stdout)
    assert [stack.app.AsyncResult(task_id).get(timeout=60) for task_id in ran] == [2 * i for i in range(5)]
    assert not [task_id for task_id in ran + waiting if stack.events.get(task_id) is not None]  # unheard
    back.set()  # the receiver reconnects
    rows = wait_until(lambda: (h := history(stack)) and all(t in h and h[t]["state"] == "SUCCESS" for t in ran)
                      and all(t in h for t in waiting) and h, timeout=60)
    assert [rows[t]["result"] for t in ran] == [str(2 * i) for i in range(5)]
    assert [(rows[t]["state"], rows[t]["queue"]) for t in waiting] == [("PENDING", "nobody")] * 2
