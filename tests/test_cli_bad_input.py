"""Bad input on the command line, as a user types it: every command checks its values the way the panel's
forms do (the stack's checks, stalk.embedded.control.inputs), and a bad one is one line `stalk: error: ...`,
exit 2, with nothing sent or stored. And Celery's own warnings (two workers with one node name) stay out
of a command's output: they go to the data dir's logs/commands.log, with one line saying so.

Real processes: `stalk up` of a user's project (tests/projects/include_proj) and the commands run from its
folder, as a user runs them; a plain `celery worker` of the same project beside it for the duplicate name."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from stalk.embedded import read_status
from stalk.embedded.control import RevokeStore, revoke_store_path

from .conftest import ROOT, clean_env, wait_until
from .test_stack import _read_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("cli-bad-input")]

PROJECT = ROOT / "tests" / "projects" / "include_proj"
APP = "proj.celery:app"
STALK = str(Path(sys.executable).parent / "stalk")
TASK = "proj.tasks.health"


@dataclass
class Running:
    data: Path
    broker_url: str
    backend_url: str
    hostname: str  # the one worker Stalk runs for the project


def stalk(*args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    argv = [STALK, *args, *(["--data-dir", str(data)] if data is not None else [])]
    return subprocess.run(argv, cwd=PROJECT, env=clean_env(), capture_output=True, text=True, timeout=120)


def refused(*args: str, data: Path | None = None) -> str:
    """The one line a refused command prints (exit 2, nothing on stdout, no traceback or usage text)."""
    out = stalk(*args, data=data)
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and out.stdout == "" and len(lines) == 1, (args, out.returncode, out.stdout,
                                                                           out.stderr)
    assert lines[0].startswith("stalk: error: ") and "Usage:" not in lines[0], lines
    return lines[0]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data = tmp_path_factory.mktemp("bad-input") / "data"
    up = subprocess.Popen([STALK, "up", "-A", APP, "--broker", "redis", "--no-beat", "--data-dir", str(data)],
                          cwd=PROJECT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(up, "stack is up")
        status = read_status(data / "state")
        assert status is not None
        rows = json.loads(stalk("workers", "--json", "-A", APP, data=data).stdout)
        (hostname,) = [r["hostname"] for r in rows if r["online"]]
        yield Running(data, status["broker"]["broker_url"], status["broker"]["backend_url"], hostname)
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)


def task_info(url: str, *items: str) -> dict[str, list[str]]:
    """What each worker says of its tasks' `items` (rate_limit, time_limit...): Celery's own inspect."""
    app = Celery("probe", broker=url, set_as_current=False)
    try:
        return app.control.inspect(timeout=2).registered(*items) or {}
    finally:
        app.close()


# -- values checked before anything connects: no stack needed ----------------------------------------

VALUES = [
    (["time-limit", TASK, "--soft", "-1"], "soft: must be 0 or more seconds, got -1"),
    (["time-limit", TASK], "time limit: give --soft, --hard or both"),
    (["time-limit", TASK, "--soft", "nan"], "soft: expected a finite number of seconds, got nan"),
    (["time-limit", TASK, "--hard", "inf"], "hard: expected a finite number of seconds, got inf"),
    (["time-limit", TASK, "--soft", "5", "--hard", "2"], "soft limit (5 s) is above the hard limit (2 s)"),
    (["time-limit", TASK, "--soft", "soon"], "soft: expected a number of seconds, got 'soon'"),
    (["time-limit", "", "--soft", "1"], "task: a name is required"),
    (["rate-limit", TASK, "fast"], "rate: fast is not a rate (N, N/s, N/m or N/h; 0 removes the limit)"),
    (["rate-limit", TASK, "-1"], "rate: -1 is not a rate"),
    (["rate-limit", TASK, ""], "rate: empty is not a rate"),
    (["rate-limit", TASK, "5/s", "-d", ""], "worker: a name is required"),
    (["pool", "w@h", "grow", "0"], "n: expected a whole number >= 1, got 0"),
    (["pool", "w@h", "shrink", "-1"], "n: expected a whole number >= 1, got -1"),
    (["pool", "w@h", "grow", "many"], "n: expected a whole number >= 1, got many"),
    (["pool", "", "grow"], "worker: a name is required"),
    (["revoke", "a b"], "task id 'a b': not a task id (1-255 characters, no spaces or control characters)"),
    (["revoke", ""], "task id '': not a task id"),
    (["revoke", "x" * 256], "not a task id"),
    (["revoke", "bad\x1bid"], "task id 'bad\\x1bid': not a task id"),
    (["revoke", "x", "--terminate", "--signal", "SIGNOPE"], "signal 'SIGNOPE': not a signal name"),
    (["revoke"], "Missing argument 'TASK_IDS...'"),
    (["queues", "--purge", ""], "queue: a name is required"),
    (["workers", "--timeout", "-1"], "Invalid value for '--timeout': must be above 0 seconds, got -1"),
    (["workers", "--timeout", "nan"], "Invalid value for '--timeout': expected a finite number of seconds"),
    (["workers", "--timeout", "0"], "Invalid value for '--timeout': must be above 0 seconds, got 0"),
    (["workers", "--timeout", "soon"], "Invalid value for '--timeout': expected a number of seconds"),
    (["inspect", "ping", "--timeout", "inf"], "Invalid value for '--timeout': expected a finite number"),
    (["inspect", "ping", "-d", ""], "worker: a name is required"),
    (["inspect", "pong"], "'pong' is not one of 'active', 'reserved'"),
    (["submit", TASK, "--wait", "--timeout", "-1"], "Invalid value for '--timeout': must be above 0"),
    (["chain", f"{TASK}", f"{TASK}", "--timeout", "nan"], "Invalid value for '--timeout'"),
    (["group", f"{TASK}", "--timeout", "0"], "Invalid value for '--timeout'"),
    (["run-entry", ""], "beat entry: a name is required"),
    (["run-entry", "health-check", "--timeout", "-5"], "Invalid value for '--timeout'"),
    (["tasks", "--name", ""], "Invalid value for '--name': must not be empty"),
    (["tasks", "--limit", "0"], "Invalid value for '--limit'"),
    (["tasks", "--state", "NOPE"], "Invalid value for '--state'"),
    (["demo", "--duration", "nan"], "Invalid value for '--duration': expected a finite number of seconds"),
    (["demo", "--duration", "-1"], "Invalid value for '--duration': must be above 0 seconds"),
    (["status", "--port", "-5"], "broker.port = -5: expected a whole number from 0 to 65535"),
    (["status", "-A", ""], "Invalid value for '-A' / '--app': must not be empty"),
    (["queues", "--broker-url", ""], "Invalid value for '--broker-url': must not be empty"),
    (["quota", "--config", ""], "Invalid value for '--config': must not be empty"),
    (["nosuch"], "No such command 'nosuch'"),
]


@pytest.mark.parametrize(("args", "message"), VALUES, ids=[" ".join(a)[:40] for a, _ in VALUES])
def test_a_bad_value_is_one_line_before_anything_connects(args, message, tmp_path):
    """On a data dir where no stack runs: the value's own error, not 'no Stalk is running'."""
    line = refused(*args, data=tmp_path / "none")
    assert message in line, line
    assert not (tmp_path / "none").exists()  # nothing stored: not even a data dir


PASSWORD = "S3cr3t-pw"


def one_line(args: list[str], data: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    argv = [STALK, *args, "--data-dir", str(data)]
    out = subprocess.run(argv, cwd=PROJECT, env=clean_env(**(env or {})), capture_output=True, text=True,
                         timeout=120)
    lines = out.stderr.splitlines()
    assert out.stdout == "" and len(lines) == 1 and lines[0].startswith("stalk: error: "), (args, out.stderr)
    assert PASSWORD not in out.stderr and "Traceback" not in out.stderr
    return out.returncode, lines[0]


MALFORMED_URLS = [
    (f"redis://:pa#{PASSWORD}@127.0.0.1:6399/0", "percent-encode it"),
    (f"redis://:pa?{PASSWORD}@127.0.0.1:6399/0", "percent-encode it"),
    (f"redis://:pa/{PASSWORD}@127.0.0.1:6399/0", "percent-encode it"),
    (f"redis://:{PASSWORD}@127.0.0.1:99999/0", "the port must be a number from 0 to 65535"),
]


@pytest.mark.parametrize(("url", "message"), MALFORMED_URLS, ids=["hash", "question", "slash", "port"])
@pytest.mark.parametrize("command", ["queues", "up", "env"])
def test_a_broker_url_kombu_cannot_read_is_one_line_without_its_password(url, message, command, tmp_path):
    """A password with a raw #, ? or / made kombu read a port from it, printed unmasked; port 99999 was a
    ValueError traceback from the redaction itself."""
    code, line = one_line([command, "--broker-url", url], tmp_path / "none")
    assert code == 2 and message in line and "redis://:***@127.0.0.1:" in line, line
    code, line = one_line([command], tmp_path / "none", env={"CELERY_BROKER_URL": url})
    assert code == 2 and message in line, line


@pytest.mark.parametrize(("url", "shown"), [
    (f"redis://127.0.0.1:1/0?password={PASSWORD}", "redis://127.0.0.1:1/0?password=***"),
    (f"redis://:{PASSWORD}@[::1]:1/0", "redis://:***@[::1]:1/0"),  # the brackets kept
    (f"redis://:{PASSWORD}@127.0.0.1:1/0;redis://:{PASSWORD}@127.0.0.1:2/0", "redis://:***@127.0.0.1:2/0"),
], ids=["query", "ipv6", "failover"])
def test_an_unreachable_broker_is_one_line_with_every_password_masked(url, shown, tmp_path):
    code, line = one_line(["queues", "--broker-url", url], tmp_path / "none")
    assert code == 1 and shown in line, line


@pytest.mark.parametrize(("content", "message"), [
    (b"[supervisor]\nbackoff_initial = nan\n", "supervisor.backoff_initial = nan: expected a finite number"),
    (b"[supervisor]\nready_timeout = inf\n", "supervisor.ready_timeout = inf: expected a finite number"),
    (b'app = "caf\xe9.mod"\n', "not valid TOML: not UTF-8 text"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML: nested too deeply"),
    (b'data_dir = "~no-such-user-stalk/x"\n', "no home directory for ~no-such-user-stalk"),
], ids=["nan", "inf", "latin1", "nested", "nouser"])
@pytest.mark.parametrize("command", ["status", "up"])
def test_a_config_file_python_would_choke_on_is_one_line(content, message, command, tmp_path):
    """These were a killed worker backing off forever ("not ready within nan s") or a traceback."""
    config = tmp_path / "stalk.toml"
    config.write_bytes(content)
    line = refused(command, "--config", str(config), data=tmp_path / "none")
    assert message in line, line


def test_an_empty_data_dir_is_refused(tmp_path):
    line = refused("status", "--data-dir", "")
    assert "Invalid value for '--data-dir': must not be empty" in line


# -- values only the cluster can judge: unknown names -------------------------------------------------

def test_unknown_tasks_workers_queues_and_entries_are_refused_and_nothing_changes(running):
    data, host = running.data, running.hostname
    before = task_info(running.broker_url, "rate_limit", "soft_time_limit", "time_limit")
    assert before and all(any(t.startswith(TASK) for t in tasks) for tasks in before.values())
    for args in (["time-limit", TASK, "--soft", "-1"], ["time-limit", TASK], ["rate-limit", TASK, "fast"]):
        refused(*args, "-A", APP, data=data)
    line = refused("rate-limit", "proj.tasks.helth", "5/s", "-A", APP, data=data)
    assert line == ("stalk: error: task 'proj.tasks.helth': not registered on any worker; did you mean "
                    "proj.tasks.health?")
    assert "not registered on any worker" in refused("time-limit", "proj.nope", "--soft", "1", "-A", APP, data=data)
    line = refused("rate-limit", TASK, "5/s", "-d", "nobody@nowhere", "-A", APP, data=data)
    assert line == (f"stalk: error: worker 'nobody@nowhere': no worker by that name answers (workers that answer: "
                    f"{host})")
    short = host.split("@", 1)[0]
    assert refused("pool", short, "grow", "-A", APP, data=data).endswith(f"; did you mean {host}?")
    assert "no worker by that name answers" in refused("inspect", "ping", "-d", "nobody@nowhere", data=data)
    assert task_info(running.broker_url, "rate_limit", "soft_time_limit", "time_limit") == before  # nothing sent

    line = refused("queues", "--purge", "nope", "-A", APP, data=data)
    assert line.startswith("stalk: error: queue 'nope': no such queue (unknown to the broker")
    depths = json.loads(stalk("queues", "--json", "-A", APP, data=data).stdout)
    assert "nope" not in depths and {"media", "imports", "reports"} <= set(depths)

    line = refused("run-entry", "nope", "-A", APP, data=data)
    assert "beat entry 'nope': not in the app's beat_schedule (entries: health-check)" in line

    # what the cluster accepts goes through, and is what the workers then say
    ok = stalk("time-limit", TASK, "--soft", "1.5", "--hard", "3", "-A", APP, data=data)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{TASK}: time limits soft=1.5 s hard=3 s on 1 worker(s)"
    ((limits,),) = ([t for t in tasks if t.startswith(TASK)] for tasks in
                    task_info(running.broker_url, "soft_time_limit", "time_limit").values())
    assert limits == f"{TASK} [soft_time_limit=1.5 time_limit=3.0]"
    assert stalk("time-limit", TASK, "--soft", "0", "--hard", "0", "-A", APP, data=data).returncode == 0


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--eta", "0001-01-01T00:00:00+14:00", "eta: 0001-01-01T00:00:00+14:00 is out of range"),
    ("--eta", "9999-12-31T23:59:59-14:00", "eta: 9999-12-31T23:59:59-14:00 is out of range"),
    ("--expires", "0001-01-01T00:00:00Z", "expires: 0001-01-01T00:00:00+00:00 is out of range"),
    ("--expires", "1e308", "expires: 1e+308 s from now is past the year 9999"),
    ("--countdown", "1e308", "countdown: 1e+308 s from now is past the year 9999"),
], ids=["eta-year-1", "eta-year-9999", "expires-year-1", "expires-1e308", "countdown-1e308"])
def test_a_time_no_worker_can_compute_is_refused_and_nothing_is_sent(running, option, value, message):
    """The year-1 eta passed validation and the worker dropped the task with an OverflowError; expires
    1e308 said "not sent: not sent: broker unreachable"."""
    depths = json.loads(stalk("queues", "--json", "-A", APP, data=running.data).stdout)
    line = refused("submit", TASK, option, value, "-A", APP, data=running.data)
    assert line.startswith(f"stalk: error: not sent: {message}"), line
    assert json.loads(stalk("queues", "--json", "-A", APP, data=running.data).stdout) == depths


SEND_PARKED = textwrap.dedent("""
    import sys
    from proj.celery import app
    app.conf.broker_url = sys.argv[1]
    print(app.send_task("proj.tasks.health", queue="parked").id)
""")


def test_revoke_refuses_what_is_no_task_id_and_ids_nothing_knows(running):
    """`not-a-uuid` can be a task id (`--task-id` sets any), but no task has it: most likely a typo, so
    nothing is revoked or stored unless --force. A task nothing but its queue knows (sent by a plain client,
    no events, no result yet) is known."""
    data = running.data
    store = RevokeStore(revoke_store_path(data))
    line = refused("revoke", "not-a-uuid", "-A", APP, data=data)
    assert line == ("stalk: error: not revoked: no task known has the id 'not-a-uuid' (not in Stalk's task "
                    "history or revoke store, no result in the backend, in no queue, on no worker); --force "
                    "revokes anyway")
    assert store.ids() == []
    app = Celery("probe", broker=running.broker_url, set_as_current=False)
    try:
        revoked = app.control.inspect(timeout=2).revoked() or {}
    finally:
        app.close()
    assert revoked and not any("not-a-uuid" in ids for ids in revoked.values())

    sent = stalk("submit", TASK, "--task-id", "my-own-id", "--wait", "-A", APP, data=data)
    assert sent.returncode == 0, sent.stderr
    client = subprocess.run([sys.executable, "-c", SEND_PARKED, running.broker_url], cwd=PROJECT, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert client.returncode == 0, client.stderr
    parked = client.stdout.strip()
    both = stalk("revoke", "my-own-id", parked, "-A", APP, data=data)
    assert both.returncode == 0 and both.stdout.strip() == f"revoked 2 task(s): my-own-id {parked}", both.stderr
    forced = stalk("revoke", "not-a-uuid", "--force", "-A", APP, data=data)
    assert forced.returncode == 0, forced.stderr
    assert sorted(store.ids()) == sorted(["my-own-id", parked, "not-a-uuid"])

    # a queue only the broker knows (the plain client declared it) is a queue: it can be purged
    purged = stalk("queues", "--purge", "parked", "-A", APP, data=data)
    assert purged.returncode == 0 and purged.stdout.strip() == "purged 1 message(s) from parked", purged.stderr


# -- Celery's warnings: in the data dir's log, not in the command's output ---------------------------

CELERY_TEXT = re.compile(r"DuplicateNodenameWarning|Traceback|warnings\.warn|flatten_reply|Received multiple")


def test_celery_warnings_of_a_duplicate_node_name_stay_out_of_command_output(running):
    """A plain `celery worker` started with the node name of Stalk's worker, on the stack's broker: every
    broadcast's replies now warn (DuplicateNodenameWarning). The commands print their own lines only, and
    one line saying where Celery's went."""
    plain = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", APP, "-b", running.broker_url, "worker", "-n", running.hostname,
         "-Q", "twin", "-P", "solo", "-l", "INFO"],
        cwd=PROJECT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(plain, " ready.")
        wait_until(lambda: _duplicated(running.broker_url, running.hostname))
        for args in (["group", f"{TASK}", f"{TASK}", "--wait"], ["workers"], ["inspect", "ping"], ["tasks"]):
            out = stalk(*args, "-A", APP, data=running.data)
            assert out.returncode == 0, (args, out.stderr)
            assert not CELERY_TEXT.search(out.stdout + out.stderr), (args, out.stdout, out.stderr)
            assert out.stderr == ""  # the history db; the stack's API (its broadcasts warn in the stack's log)
        # by broker URL, no stack on the data dir: the command broadcasts itself, Celery's lines go to its log
        own = stalk("inspect", "ping", "-A", APP, "--broker-url", running.broker_url, data=running.data.parent / "other")
        assert own.returncode == 0, own.stderr
        assert not CELERY_TEXT.search(own.stdout + own.stderr), (own.stdout, own.stderr)
        log = running.data.parent / "other" / "logs" / "commands.log"
        assert re.fullmatch(rf"stalk: \d+ warnings? from Celery: see {re.escape(str(log))}\n", own.stderr), own.stderr
        assert "DuplicateNodenameWarning: Received multiple replies from node name: " + running.hostname \
            in log.read_text()
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.communicate(timeout=60)


def _duplicated(url: str, hostname: str) -> bool:
    app = Celery("probe", broker=url, set_as_current=False)
    try:
        replies = app.control.broadcast("ping", reply=True, timeout=1)
    finally:
        app.close()
    return sum(1 for reply in replies for name in reply if name == hostname) >= 2
