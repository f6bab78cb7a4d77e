"""Stalk on users' own Celery projects (tests/projects/, none of them the demo), run as a user runs it:
`stalk -A ...` from the project's folder, on a real stack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env, wait_until
from .test_stack import _read_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("user-projects")]

PROJECTS = ROOT / "tests" / "projects"
STALK = str(Path(sys.executable).parent / "stalk")

# project -> (app, its queues, a task, arguments that do not fit, arguments that do, queue, result)
CASES = {
    "include_proj": ("proj.celery:app", {"imports", "media", "reports", "celery"}, "proj.tasks.resize_image",
                     [1, 2, 3, 4, 5], ["cat.png", 64], "media", "cat.png@64"),
    "django_style": ("site_conf.celery:app", {"web", "mail"}, "billing.tasks.charge", [1], [7, 250], "web",
                     {"customer": 7, "charged": 250}),
    "single_module": ("solo:app", {"celery"}, "solo.scale", [], [[1, 2]], "celery", [2.0, 4.0]),
}

IN_PROCESS = textwrap.dedent("""
    import json, os, sys
    from stalk.embedded.celery_app import default_workers, import_task_modules, load_app, routed_queues
    from stalk.embedded.control import SubmitContext, validate

    app = load_app(sys.argv[1])
    problem = import_task_modules(app)
    ctx = SubmitContext(tasks=frozenset(app.tasks),
                        arguments=lambda name: getattr(app.tasks.get(name), "__header__", None))
    def problems(args):
        return [(p.severity, p.message) for p in validate({"name": sys.argv[2], "args": args}, ctx)[0]]
    print(json.dumps({
        "problem": problem, "cpus": os.cpu_count(),
        "workers": [[w.name, sorted(w.queues), w.concurrency] for w in default_workers(app)],
        "queues": sorted(routed_queues(app)), "tasks": sorted(t for t in app.tasks if not t.startswith("celery.")),
        "bad": problems(sys.argv[3]), "good": problems(sys.argv[4]),
    }))
""")


@pytest.mark.parametrize("project", CASES)
def test_task_modules_load_as_a_worker_loads_them_and_arguments_are_checked(project):
    app, queues, task, bad, good, _queue, _result = CASES[project]
    out = subprocess.run([sys.executable, "-P", "-c", IN_PROCESS, app, task, json.dumps(bad), json.dumps(good)],
                         cwd=PROJECTS / project, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["problem"] is None and task in seen["tasks"]
    # one worker for every queue of a small app, at Celery's own concurrency (one process a CPU)
    ((name, consumed, concurrency),) = seen["workers"]
    assert set(consumed) == queues == set(seen["queues"]) and concurrency == seen["cpus"]
    assert [severity for severity, _ in seen["bad"]] == ["error"]
    assert "positional argument" in seen["bad"][0][1]
    assert seen["good"] == []


@pytest.mark.parametrize("project", CASES)
def test_submit_on_the_projects_own_stack(project, tmp_path):
    app, _queues, task, bad, good, queue, result = CASES[project]
    cwd, data = PROJECTS / project, str(tmp_path / "data")
    env = clean_env()
    up = subprocess.Popen([STALK, "up", "-A", app, "--broker", "redis", "--no-beat", "--data-dir", data],
                          cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(up, "stack is up")

        def stalk(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([STALK, *args, "-A", app, "--data-dir", data], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=120)

        refused = stalk("submit", task, "--args", json.dumps(bad))
        assert refused.returncode == 2 and refused.stdout == ""
        assert "positional argument" in refused.stderr and task in refused.stderr
        sent = stalk("submit", task, "--args", json.dumps(good), "--wait", "--json")
        assert sent.returncode == 0, sent.stderr
        out = json.loads(sent.stdout)
        assert (out["state"], out["queue"], out["result"]) == ("SUCCESS", queue, result)
        status = stalk("status", "--json")
        assert status.returncode == 0, status.stderr
        workers = [p for p in json.loads(status.stdout)["processes"] if p.get("role") == "worker"]
        assert len(workers) == 1
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    assert up.returncode == 0



SEND_PARKED = textwrap.dedent("""
    from solo import app
    app.conf.task_send_sent_event = True
    print(" ".join(app.send_task("solo.add", (i, i), queue="parked").id for i in range(3)))
""")


class ProjectStack:
    """`stalk up` on a project in tests/projects/ with its own data dir, and `stalk` commands against it."""

    def __init__(self, project: str, app: str, tmp_path: Path) -> None:
        self.cwd, self.app, self.data, self.env = PROJECTS / project, app, str(tmp_path / "data"), clean_env()

    def stalk(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([STALK, *args, "-A", self.app, "--data-dir", self.data], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def up(self) -> subprocess.Popen:
        proc = subprocess.Popen([STALK, "up", "-A", self.app, "--broker", "redis", "--no-beat", "--data-dir",
                                 self.data], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        _read_until(proc, "stack is up")
        return proc

    @staticmethod
    def down(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 0

    def tasks(self) -> dict[str, dict]:
        listed = self.stalk("tasks", "--json", "--limit", "100")
        assert listed.returncode == 0, listed.stderr
        return {row["task_id"]: row for row in json.loads(listed.stdout)}


def test_a_purged_queue_leaves_its_tasks_purged_in_history_across_a_restart(tmp_path):
    """Tasks waiting in a queue no worker consumes, purged with `stalk queues --purge`: their records say
    PURGED, why and by whom (not PENDING forever), and still do once the stack has started again."""
    project = ProjectStack("single_module", "solo:app", tmp_path)
    stack = project.up()
    try:
        # `stalk submit` refuses a queue no worker consumes: the user's own client sends them (with task-sent
        # events, so the stack's store knows them)
        broker = json.loads(project.stalk("env", "--json").stdout)
        client = subprocess.run([sys.executable, "-c", SEND_PARKED], cwd=project.cwd, env={**project.env, **broker},
                                capture_output=True, text=True, timeout=60)
        assert client.returncode == 0, client.stderr
        parked = client.stdout.split()
        ran = json.loads(project.stalk("submit", "solo.add", "--args", "[1, 1]", "--wait", "--json").stdout)
        wait_until(lambda: all(project.tasks().get(t, {}).get("state") == "PENDING" for t in parked), timeout=30)
        purged = project.stalk("queues", "--purge", "parked")
        assert purged.stdout.strip() == "purged 3 message(s) from parked", purged.stderr
        shown = wait_until(
            lambda: (rows := project.tasks()) and all(rows[t]["state"] == "PURGED" for t in parked) and rows,
            timeout=30)
        for task_id in parked:
            reason = shown[task_id]["exception"]
            assert reason.startswith("purged from queue parked at ") and " by stalk queues --purge (" in reason
        assert shown[ran["task_id"]]["state"] == "SUCCESS"
        by_state = project.stalk("tasks", "--state", "purged", "--json")
        assert sorted(row["task_id"] for row in json.loads(by_state.stdout)) == sorted(parked)
        listed = project.stalk("tasks", "--state", "PURGED")
        assert listed.returncode == 0 and all(f"{t}  PURGED" in listed.stdout for t in parked), listed.stdout
    finally:
        project.down(stack)
    stack = project.up()
    try:
        submitted = project.stalk("submit", "solo.add", "--args", "[2, 2]", "--wait", "--json")
        later = json.loads(submitted.stdout)["task_id"]
        # the restarted stack has loaded its history, caught up and written since
        again = wait_until(lambda: (rows := project.tasks()) and rows.get(later, {}).get("state") == "SUCCESS" and rows,
                           timeout=30)
        assert [again[t]["state"] for t in parked] == ["PURGED"] * 3
        assert again[parked[0]]["exception"] == shown[parked[0]]["exception"]
    finally:
        project.down(stack)


def test_a_task_module_that_fails_to_import_is_said_once_in_the_stacks_log(tmp_path):
    """The workers will fail on it too; the stack says why submits to those tasks go unchecked."""
    import dataclasses

    from stalk.embedded import OWN_LOG, Stack

    from .conftest import make_config

    (tmp_path / "broken_proj.py").write_text('from celery import Celery\napp = Celery("broken_proj", '
                                             'include=["broken_tasks"])\n')
    (tmp_path / "broken_tasks.py").write_text('raise RuntimeError("no database here")\n')
    config = dataclasses.replace(make_config(tmp_path / "data", app="broken_proj:app", broker={"mode": "eager"}),
                                 app_dir=tmp_path)
    stack = Stack(config).start(wait=True, timeout=30)
    try:
        lines = [line.text for line in stack.logs(OWN_LOG)]
    finally:
        stack.stop()
    (line,) = [t for t in lines if "task modules" in t]
    assert line == ("[stalk] importing broken_proj's task modules failed: RuntimeError: no database here; "
                    "their arguments are not checked")


def test_a_retried_task_keeps_its_attempts_in_stalk_tasks_across_a_restart(tmp_path):
    """History kept only a task's last state: a task that retried, then succeeded, showed no trace of its
    retries once Stalk had started again. Its attempts are written with it and read back."""
    project = ProjectStack("include_proj", "proj.celery:app", tmp_path)
    stack = project.up()
    try:
        sent = project.stalk("submit", "proj.tasks.flaky", "--args", "[2]", "--wait", "--json")
        assert sent.returncode == 0, sent.stderr
        flaky = json.loads(sent.stdout)
        assert (flaky["state"], flaky["result"]) == ("SUCCESS", 2)
        wait_until(lambda: project.tasks().get(flaky["task_id"], {}).get("state") == "SUCCESS", timeout=30)
    finally:
        project.down(stack)
    stack = project.up()
    try:
        later = json.loads(project.stalk("submit", "proj.tasks.health", "--wait", "--json").stdout)["task_id"]
        rows = wait_until(lambda: (rows := project.tasks()) and rows.get(later, {}).get("state") == "SUCCESS" and rows,
                          timeout=30)  # the restarted stack has loaded its history and written since
        attempts = rows[flaky["task_id"]]["attempts"]
        assert [a["kind"] for a in attempts] == ["retry", "retry"], attempts
        assert all("not yet" in a["reason"] and a["worker"] for a in attempts), attempts
        assert all(datetime.fromisoformat(a["at"]).tzinfo is not None for a in attempts), attempts
        listed = project.stalk("tasks", "--name", "flaky")
        assert listed.returncode == 0 and "retried 2x" in listed.stdout, listed.stdout
    finally:
        project.down(stack)
