"""Stacks on the default data dirs, as a user runs them: the demo and a project (tests/projects/) keep
their own history, quota ledger and broker; a command without -A or --data-dir finds the running stack
and uses its app; `stalk env` hands its broker to your own code. Each test has its own platform data dir
(XDG_DATA_HOME), so no stack here is on an explicit --data-dir."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from stalk.embedded import DEMO_APP

from .conftest import ROOT, clean_env, wait_until
from .test_stack import _read_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("running-stacks")]

BIN = Path(sys.executable).parent
STALK = str(BIN / "stalk")
PROJ = ROOT / "tests" / "projects" / "include_proj"
APP = "proj.celery:app"
PROJ_QUEUES = {"imports", "media", "reports", "celery"}


class User:
    """One user's shell: their own platform data dir, a folder outside any project, `stalk` on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = clean_env(XDG_DATA_HOME=str(tmp_path / "xdg"), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        self.base = tmp_path / "xdg" / "stalk"
        self.elsewhere = tmp_path / "elsewhere"
        self.elsewhere.mkdir()
        self.ups: list[subprocess.Popen] = []

    def up(self, cwd: Path, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([STALK, "up", "--broker", "redis", "--no-beat", *args], cwd=cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.ups.append(proc)
        _read_until(proc, "stack is up", timeout=120)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 0

    def stalk(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([STALK, *args], cwd=cwd or self.elsewhere, env=self.env, capture_output=True,
                              text=True, timeout=120)

    def json(self, *args: str, cwd: Path | None = None):
        out = self.stalk(*args, "--json", cwd=cwd)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def close(self) -> None:
        for proc in self.ups:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=60)


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    shell = User(tmp_path)
    yield shell
    shell.close()


def test_the_demo_and_a_project_keep_their_own_data_and_a_bare_command_asks_which(user):
    # the demo first, as a new user tries it; a bare command finds it
    demo = user.up(user.elsewhere)
    sent = user.json("submit", "demo.add", "--args", "[2, 3]", "--wait")
    assert (sent["queue"], sent["state"], sent["result"]) == ("default", "SUCCESS", 5)
    assert "youtube" in {q["name"] for q in user.json("quota")}
    demo_dir = Path(user.json("status")["data_dir"])
    assert demo_dir == user.base / "apps" / "demo"
    user.stop(demo)

    # then the user's own project: none of the demo's history, quotas or queues
    proj = user.up(PROJ, "-A", APP)
    status = user.json("status", "-A", APP, cwd=PROJ)
    proj_dir = Path(status["data_dir"])
    assert proj_dir.parent == user.base / "apps" and proj_dir != demo_dir
    assert (status["app"], Path(status["app_dir"])) == (APP, PROJ)
    sent = user.json("submit", "proj.tasks.resize_image", "--args", '["cat.png", 8]', "--wait", "-A", APP, cwd=PROJ)
    assert (sent["queue"], sent["state"], sent["result"]) == ("media", "SUCCESS", "cat.png@8")
    names = {row["name"] for row in user.json("tasks", "-A", APP, cwd=PROJ)}
    assert names == {"proj.tasks.resize_image"}
    assert user.json("quota", "-A", APP, cwd=PROJ) == []
    assert set(user.json("queues", "-A", APP, cwd=PROJ)) == PROJ_QUEUES
    # and the demo's history is still the demo's alone
    assert {row["name"] for row in user.json("tasks", "--data-dir", str(demo_dir))} == {"demo.add"}

    # both running: a bare command cannot choose, and says how to
    demo = user.up(user.elsewhere)
    asked = user.stalk("status")
    assert asked.returncode == 2 and asked.stdout == ""
    (line,) = asked.stderr.splitlines()
    assert line.startswith("stalk: error: 2 Stalk stacks are running")
    for where, app, proc in ((demo_dir, DEMO_APP, demo), (proj_dir, APP, proj)):
        assert str(where) in line and app in line and str(proc.pid) in line
    assert "--data-dir" in line and "-A" in line
    assert user.json("status", "--data-dir", str(demo_dir))["app"] == DEMO_APP
    assert user.json("status", "-A", APP, cwd=PROJ)["data_dir"] == str(proj_dir)


CLIENT = textwrap.dedent("""
    import os, celery
    client = celery.Celery(broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])
    print(client.send_task("proj.tasks.resize_image", ("dog.png", 3)).get(timeout=60))
""")


def test_bare_commands_use_the_running_projects_stack_and_its_broker_reaches_your_code(user):
    user.up(PROJ, "-A", APP)
    # from another directory, without -A: the stack's app, imported from the project's folder, routes it
    sent = user.json("submit", "proj.tasks.import_csv", "--args", '["a.csv"]', "--wait")
    assert (sent["queue"], sent["state"], sent["result"]) == ("imports", "SUCCESS", {"path": "a.csv", "rows": 4})
    refused = user.stalk("submit", "proj.tasks.import_csv", "--args", "[1, 2, 3]")
    assert refused.returncode == 2 and "positional argument" in refused.stderr
    shown = user.stalk("status")
    assert shown.returncode == 0, shown.stderr
    data_dir = user.json("status")["data_dir"]
    assert f"data dir: {data_dir}" in shown.stdout and f"app: {APP} (imported from {PROJ})" in shown.stdout

    # stalk env: the broker and backend for your own code, never in status --json
    env = user.json("env")
    assert set(env) == {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    password = Path(data_dir, "broker.password").read_text().strip()
    assert f":{password}@" in env["CELERY_BROKER_URL"] and password not in user.stalk("status", "--json").stdout
    lines = user.stalk("env").stdout.splitlines()
    assert lines == [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    script = f'eval "$(stalk env)" && exec {shlex.quote(sys.executable)} -c {shlex.quote(CLIENT)}'
    plain = subprocess.run(["bash", "-c", script], cwd=user.elsewhere, env=user.env, capture_output=True, text=True,
                           timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "dog.png@3"
    # its events reach the stack's history a moment after the client has its result
    wait_until(lambda: "proj.tasks.resize_image" in {row["name"] for row in user.json("tasks")}, timeout=30,
               every=0.5)


def test_an_app_that_does_not_exist_and_no_running_stack_are_one_line(user):
    for args in (["-A", "nosuchmod:app", "status"], ["status", "-A", "nosuchmod:app"],
                 ["submit", "x.y", "-A", "nosuchmod:app"], ["env", "-A", "nosuchmod.sub:app"]):
        out = user.stalk(*args)
        assert out.returncode == 2 and out.stdout == "", args
        (line,) = out.stderr.splitlines()
        assert line.startswith("stalk: error: -A nosuchmod") and "nosuchmod" in line, args
    none = user.stalk("env")
    assert none.returncode == 1 and none.stdout == ""
    (line,) = none.stderr.splitlines()
    assert line == f"stalk: error: no Stalk is running on data dir {user.base / 'apps' / 'demo'}"


def test_a_command_given_the_data_dir_of_a_running_project_uses_its_app(user, tmp_path):
    """--data-dir without -A means the stack running there, with its app (routes, task signatures)
    imported from its own folder, whatever directory the command runs in."""
    data_dir = tmp_path / "explicit"
    user.up(PROJ, "-A", APP, "--data-dir", str(data_dir))
    sent = user.json("submit", "proj.tasks.import_csv", "--args", '["b.csv"]', "--wait", "--data-dir", str(data_dir))
    assert (sent["queue"], sent["state"]) == ("imports", "SUCCESS")
    refused = user.stalk("submit", "proj.tasks.import_csv", "--args", "[1, 2, 3]", "--data-dir", str(data_dir))
    assert refused.returncode == 2 and "positional argument" in refused.stderr
    shown = user.stalk("status", "--data-dir", str(data_dir))
    assert f"app: {APP} (imported from {PROJ})" in shown.stdout, shown.stdout
