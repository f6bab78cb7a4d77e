"""Task data is untrusted: escapes in args, results, exceptions, names and log lines never reach a terminal
raw, and an odd string (a lone surrogate) never stops the task history (issue 26, findings 4 and 5)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import threading
from collections.abc import Iterator

import pytest

from stalk.embedded import Stack, printable
from stalk.embedded.events import EventStore, HistoryError, read_tasks
from stalk.embedded.events.history import HistoryWriter
from stalk.embedded.events.records import TaskRecord
from stalk.embedded.supervisor.logs import LogRing

from .conftest import ROOT, clean_env, make_config, stalk_cmd, wait_until

# OSC title + BEL, clear screen (CSI), C1 CSI, backspace, CR, a bidi override
HOSTILE = "\x1b]0;PWNED\x07 \x1b[2J\x9b31m\x08\r\u202e!"
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e\ud800-\udfff]")  # what must not reach a terminal
APP = "tests.apps.events_app:app"


def raw_in(text: str) -> list[str]:
    return RAW.findall(text)


def test_printable_escapes_as_repr_does_and_keeps_what_is_asked():
    assert printable("plain é 日本") == "plain é 日本"
    shown = printable(HOSTILE + "\ud800\n")
    assert not raw_in(shown) and shown.startswith("\\x1b]0;PWNED\\x07 \\x1b[2J\\x9b")
    assert ast.literal_eval(f"'{shown}'") == HOSTILE + "\ud800\n"  # a display repr stays a literal
    assert printable("a\nb\x1b", keep="\n") == "a\nb\\x1b"


def test_the_fold_keeps_every_text_of_an_event_printable():
    store = EventStore()
    base = {"uuid": "t1", "hostname": f"w{HOSTILE}@h", "timestamp": 1.0}
    store.ingest_many([
        dict(base, type="task-sent", name=f"ev.{HOSTILE}", queue=f"q{HOSTILE}", routing_key=f"r{HOSTILE}",
             args=repr((HOSTILE, "\ud800")), kwargs=repr({"k": HOSTILE})),
        dict(base, type="task-received", args=repr((HOSTILE, "\ud800"))),
        dict(base, type="task-retried", exception=f"E({HOSTILE!s})", traceback=f"line 1\n{HOSTILE}\n"),
        dict(base, type="task-failed", exception=f"ValueError('{HOSTILE}')", traceback=f"Trace\n  {HOSTILE}\n"),
        {"type": "worker-heartbeat", "hostname": f"w{HOSTILE}@h", "timestamp": 1.0, "freq": 2.0},
    ])
    rec = store.get("t1")
    assert rec is not None
    texts = [rec.name, rec.queue, rec.routing_key, rec.worker, rec.args, rec.kwargs, rec.exception]
    assert all(t and not raw_in(t) for t in texts), texts
    assert rec.traceback and not raw_in(rec.traceback) and rec.traceback.count("\n") == 2  # lines kept
    assert ast.literal_eval(rec.args) == (HOSTILE, "\ud800")  # re-submit from the repr gives the same args
    steps = [str(e) for e in store.events_of("t1")]
    assert steps and not raw_in(" ".join(steps))
    assert all(not raw_in(w.hostname) for w in store.workers())
    assert {w.hostname for w in store.workers()} == {rec.worker}  # a task's worker names its record


def test_a_log_line_is_printable_in_the_ring_and_its_file(tmp_path):
    ring = LogRing("worker:x", 10, tmp_path / "x.log")
    line = ring.append(f"Task ev.add[1] succeeded: '{HOSTILE}\ud800'\tok\n")
    ring.close()
    assert not raw_in(line.text) and line.text.endswith("\tok")
    assert not raw_in((tmp_path / "x.log").read_text("utf-8"))


def test_the_history_writer_outlives_a_row_sqlite_cannot_bind(tmp_path):
    """A lone surrogate (here in a task id, which is kept as it is) made the writer thread die on
    UnicodeEncodeError: no later task reached history. Now the bad row is written escaped, the rest too."""
    path = tmp_path / "history.sqlite3"
    batches = [[TaskRecord("bad-\ud800", name="x", state="SUCCESS", result="ok", updated=1.0)],
               [TaskRecord("big", name="x", state="SUCCESS", retries=2**70, updated=2.0)],
               [TaskRecord("after", name="x", state="SUCCESS", updated=3.0)]]
    errors: list[str] = []
    writer = HistoryWriter(path, lambda: batches.pop(0) if batches else [], interval=0.01, on_error=errors.append)
    died: list[BaseException] = []
    hook, threading.excepthook = threading.excepthook, lambda args: died.append(args.exc_value)
    try:
        writer.start()
        wait_until(lambda: "after" in ids_in(path), timeout=20)
    finally:
        writer.stop()
        threading.excepthook = hook
    assert ids_in(path) == {"bad-\\ud800", "big", "after"} and not died and not errors


def ids_in(path) -> set[str]:
    try:
        return {r["task_id"] for r in read_tasks(path)}
    except HistoryError:  # not written yet
        return set()


# -- real stack, real CLI -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    config = make_config(tmp_path_factory.mktemp("untrusted") / "data", broker={"mode": "redis"}, beat=False,
                         app=APP)
    stack = Stack(config).start(wait=True, timeout=60)
    yield stack
    stack.stop()


def stalk(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(stalk_cmd(*args, "-A", APP, "--data-dir", str(stack.paths.data_dir)), cwd=ROOT, env=clean_env(),
                          capture_output=True, timeout=120)
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")  # strict: no lone surrogate either
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.procs
@pytest.mark.xdist_group("untrusted")
def test_the_cli_prints_no_escape_from_task_data(stack):
    ok = stalk(stack, "submit", "ev.add", "--args", json.dumps([HOSTILE, "y"]), "--wait")
    assert ok.returncode == 0, ok.stderr
    assert "result: " in ok.stdout and not raw_in(ok.stdout + ok.stderr)
    boom = stalk(stack, "submit", "ev.boom", "--args", json.dumps([HOSTILE]), "--wait")
    assert boom.returncode == 1 and "FAILURE" in boom.stderr and "PWNED" in boom.stderr
    assert not raw_in(boom.stdout + boom.stderr)
    odd_id = stack.app.send_task("ev.add", ("a", "b"), task_id=f"id-{HOSTILE}").id  # a plain client sets any id
    for task in ("ev.add", "ev.boom"):
        wait_until(lambda t=task: [r for r in read_tasks(stack.paths.history_db, name=t) if r["finished"]])
    wait_until(lambda: odd_id in ids_in(stack.paths.history_db))
    listed = stalk(stack, "tasks")
    assert listed.returncode == 0 and listed.stdout.count("PWNED") == 3, listed.stdout
    assert not raw_in(listed.stdout + listed.stderr)
    as_json = stalk(stack, "tasks", "--json")
    rows = json.loads(as_json.stdout)  # valid JSON, the texts escaped as JSON escapes them
    assert not raw_in(as_json.stdout) and any("PWNED" in (r["result"] or "") for r in rows)
    for command in (("workers",), ("inspect", "active"), ("inspect", "registered"), ("queues",)):
        out = stalk(stack, *command)
        assert out.returncode == 0 and not raw_in(out.stdout + out.stderr), (command, out.stderr)


@pytest.mark.procs
@pytest.mark.xdist_group("untrusted")
def test_a_lone_surrogate_does_not_stop_history(stack):
    odd = stalk(stack, "submit", "ev.add", "--args", '["\\ud800", "x"]', "--wait")
    assert odd.returncode == 0, odd.stderr
    assert not raw_in(odd.stdout + odd.stderr)
    after = stalk(stack, "submit", "ev.add", "--args", '["after-", "surrogate"]', "--wait")
    assert after.returncode == 0, after.stderr
    rows = wait_until(lambda: [r for r in read_tasks(stack.paths.history_db, name="ev.add")
                               if r["result"] == "'after-surrogate'"], timeout=30)
    assert rows
    odd_rows = [r for r in read_tasks(stack.paths.history_db, name="ev.add", limit=500)
                if "\\ud800" in (r["args"] or "")]
    assert odd_rows and odd_rows[0]["result"] == "'\\ud800x'"
    stack_log = (stack.paths.data_dir / "logs").glob("*.log")
    assert not any("UnicodeEncodeError" in p.read_text("utf-8", "replace") for p in stack_log)
