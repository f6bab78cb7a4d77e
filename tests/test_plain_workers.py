"""Workers Stalk does not run: a plain `celery -A proj worker` (no -E) of a user's project on a broker
Stalk attaches to (`stalk up --broker-url ...`), its tasks sent by the project's own Celery client.

Stalk asks such workers for task events (enable_events, as Flower does), reads a running task's
PROGRESS from the result backend, and the queue of a task that had no task-sent event from the
worker's answer to query_task (delivery_info)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from stalk.embedded.net import free_port

from .conftest import ROOT, clean_env, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("plain-workers")]

PROJECT = ROOT / "tests" / "projects" / "include_proj"
APP = "proj.celery:app"
STALK = str(Path(sys.executable).parent / "stalk")
AMQP_URL = os.environ.get("STALK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
ASKED = "to send task events (enable_events)"

# The project's own client: what a user's code (a web view, a script) does, with Celery's defaults
# (no task-sent events).
SEND = textwrap.dedent("""
    import importlib, json, sys
    from proj.celery import app
    app.conf.broker_url, app.conf.result_backend = sys.argv[1], sys.argv[2]
    module, _, name = sys.argv[3].rpartition(".")
    task = getattr(importlib.import_module(module), name)
    options = {"queue": sys.argv[5]} if len(sys.argv) > 5 else {}
    print(task.apply_async(kwargs=json.loads(sys.argv[4]), **options).id)
""")


class Output:
    """A process's merged output, read on a thread (so a test can wait for a line and read on)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines = proc, []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        try:
            return wait_until(lambda: next((line for line in self.lines if marker in line), None), timeout)
        except AssertionError:
            raise AssertionError(f"{marker!r} not printed; got:\n{self.text}") from None


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A redis-server of the test's own (the broker or result backend a user's cluster would have)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _pings(url), timeout=20)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def plain_worker(broker: str, backend: str, queues: list[str], log: Path,
                 settings: Path | None = None) -> subprocess.Popen:
    """`celery -A proj worker` as a user starts it: no -E, no Stalk; `settings`: a module of the user's
    settings (celery --config)."""
    config = ["--config", settings.stem] if settings else []
    env = clean_env(PYTHONPATH=str(settings.parent)) if settings else clean_env()
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", APP, "-b", broker, "--result-backend", backend, *config, "worker",
             "-Q", ",".join(queues), "-P", "threads", "-c", "4", "-n", f"plain-{uuid.uuid4().hex[:8]}@%h",
             "--without-mingle", "--without-gossip", "-l", "INFO"],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stalk_up(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([STALK, "up", "-A", APP, "--data-dir", str(data), *args], cwd=PROJECT,
                            env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def send(broker: str, backend: str, task: str, kwargs: dict, queue: str | None = None) -> str:
    argv = [sys.executable, "-c", SEND, broker, backend, task, json.dumps(kwargs), *([queue] if queue else [])]
    out = subprocess.run(argv, cwd=PROJECT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def task_row(data: Path, task_id: str) -> dict | None:
    out = subprocess.run([STALK, "tasks", "--json", "--limit", "20", "--data-dir", str(data)], cwd=PROJECT,
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return next((row for row in json.loads(out.stdout) if row["task_id"] == task_id), None)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if proc.args[0] == STALK else signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_plain_worker(data: Path, broker: str, backend: str, queue: str | None, expect_queue: str) -> None:
    """Quick tasks reach SUCCESS; a long one shows its PROGRESS meta while it runs, and its queue."""
    quick = send(broker, backend, "proj.tasks.import_csv", {"path": "a.csv", "rows": 2}, queue)
    row = wait_until(lambda: (r := task_row(data, quick)) and r["state"] == "SUCCESS" and r, timeout=60)
    assert json.loads(row["result"].replace("'", '"')) == {"path": "a.csv", "rows": 2}

    rows = 200  # 0.05 s a row: 10 s of PROGRESS
    slow = send(broker, backend, "proj.tasks.import_csv", {"path": "big.csv", "rows": rows}, queue)

    def progressing() -> dict | None:
        row = task_row(data, slow)
        if row is not None and row["state"] == "SUCCESS":
            raise AssertionError(f"finished before any PROGRESS showed: {row}")
        if row is not None and row["state"] == "PROGRESS" and row["queue"] == expect_queue:
            return row
        return None

    row = wait_until(progressing, timeout=60, every=0.3)
    progress = row["progress"]
    assert progress["total"] == rows and 1 <= progress["current"] <= rows
    assert row["worker"].startswith("plain-")
    done = wait_until(lambda: (r := task_row(data, slow)) and r["state"] == "SUCCESS" and r, timeout=90)
    assert done["queue"] == expect_queue


def test_plain_worker_on_an_attached_redis(tmp_path, redis_url):
    data = tmp_path / "data"
    worker = plain_worker(redis_url, redis_url, ["imports", "media", "reports", "celery"], tmp_path / "worker.log")
    up = stalk_up(data, "--broker-url", redis_url)
    try:
        out = Output(up)
        out.wait_for("stack is up")
        line = out.wait_for(ASKED)
        assert "asked 1 worker(s)" in line and "STALK_ENABLE_EVENTS=0" in line
        check_plain_worker(data, redis_url, redis_url, None, "imports")
        assert "enabled by remote" in (tmp_path / "worker.log").read_text()
    finally:
        stop(up, worker)
    assert up.returncode == 0, out.text


def test_plain_worker_on_an_attached_rabbitmq(tmp_path, redis_url):
    try:
        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        pytest.skip(f"no AMQP broker at {AMQP_URL}: {exc}")
    queue = f"stalk-plain-{uuid.uuid4().hex[:8]}"  # the default vhost is shared: a queue of this test's own
    data = tmp_path / "data"
    worker = plain_worker(AMQP_URL, redis_url, [queue], tmp_path / "worker.log")
    up = stalk_up(data, "--broker-url", AMQP_URL, "--result-backend", redis_url)
    try:
        out = Output(up)
        out.wait_for("stack is up")
        out.wait_for(ASKED)
        check_plain_worker(data, AMQP_URL, redis_url, queue, queue)
    finally:
        stop(up, worker)
        with Connection(AMQP_URL) as conn:
            conn.default_channel.queue_delete(queue)
    assert up.returncode == 0, out.text


def test_asking_for_events_can_be_turned_off(tmp_path, redis_url):
    data = tmp_path / "data"
    worker = plain_worker(redis_url, redis_url, ["celery"], tmp_path / "worker.log")
    up = stalk_up(data, "--broker-url", redis_url, env=clean_env(STALK_ENABLE_EVENTS="0"))
    try:
        out = Output(up)
        out.wait_for("stack is up")
        line = out.wait_for("events.enable_remote = false")
        assert "-E" in line
        task_id = send(redis_url, redis_url, "proj.tasks.health", {})
        wait_until(lambda: _done(redis_url, task_id), timeout=60)
    finally:
        stop(up, worker)
    assert ASKED not in out.text
    assert "enabled by remote" not in (tmp_path / "worker.log").read_text()


def _done(url: str, task_id: str) -> bool:
    return redis.Redis.from_url(url).get(f"celery-task-meta-{task_id}") is not None


# A task that finishes before Stalk's query_task reaches its worker (defect 6's gap): its queue comes
# from the result backend when the worker's app stores extended results, else from the app's routes
# restricted to the queues that worker consumes, marked as inferred ("queue_source": "route").
QUEUES = ["imports", "media", "reports", "celery"]


def _queued(data: Path, task_id: str) -> dict:
    return wait_until(lambda: (r := task_row(data, task_id)) and r["state"] == "SUCCESS" and r["queue"] and r,
                      timeout=60, every=0.3)


def test_a_fast_task_on_a_multi_queue_plain_worker_gets_a_marked_route_queue(tmp_path, redis_url):
    data = tmp_path / "data"
    worker = plain_worker(redis_url, redis_url, QUEUES, tmp_path / "worker.log")
    up = stalk_up(data, "--broker-url", redis_url)
    try:
        out = Output(up)
        out.wait_for("stack is up")
        out.wait_for(ASKED)
        check = send(redis_url, redis_url, "proj.tasks.health", {})  # events are on once this one is seen
        wait_until(lambda: (r := task_row(data, check)) and r["state"] == "SUCCESS", timeout=60, every=0.3)
        fast = send(redis_url, redis_url, "proj.tasks.resize_image", {"path": "a.png", "width": 64})
        row = _queued(data, fast)
        assert row["worker"].startswith("plain-")
        # the worker was too quick to be asked: the app routes resize_image to media, which it consumes
        assert (row["queue"], row["queue_source"]) in {("media", "route"), ("media", None)}, row
    finally:
        stop(up, worker)
    assert up.returncode == 0, out.text


def test_a_fast_task_gets_its_queue_from_extended_results(tmp_path, redis_url):
    settings = tmp_path / "user_settings.py"
    settings.write_text("result_extended = True\n")
    data = tmp_path / "data"
    worker = plain_worker(redis_url, redis_url, QUEUES, tmp_path / "worker.log", settings=settings)
    up = stalk_up(data, "--broker-url", redis_url)
    try:
        out = Output(up)
        out.wait_for("stack is up")
        out.wait_for(ASKED)
        check = send(redis_url, redis_url, "proj.tasks.health", {})
        wait_until(lambda: (r := task_row(data, check)) and r["state"] == "SUCCESS", timeout=60, every=0.3)
        # sent to reports by the call, not where the app routes it (media): a route would be wrong here
        fast = send(redis_url, redis_url, "proj.tasks.resize_image", {"path": "b.png", "width": 32}, "reports")
        row = _queued(data, fast)
        assert (row["queue"], row["queue_source"]) == ("reports", None), row
    finally:
        stop(up, worker)
    assert up.returncode == 0, out.text
