"""Hot reload: editing the -A app's source restarts workers and beat, which then run the new code."""

from __future__ import annotations

import sys
import time

import pytest

from stalk.embedded import ProcState

from .conftest import wait_until

pytestmark = pytest.mark.procs

APP_SOURCE = '''
from celery import Celery

app = Celery("reload_app")
app.conf.task_default_queue = "reload"


@app.task(name="reload.version")
def version() -> str:
    return "{version}"
'''


def test_editing_app_source_restarts_workers_with_new_code(running_stack, tmp_path, monkeypatch):
    package = tmp_path / "src" / "reloadpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    module = package / "tasks.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setenv("PYTHONPATH", str(package.parent))
    monkeypatch.delitem(sys.modules, "reloadpkg.tasks", raising=False)
    stack = running_stack(app="reloadpkg.tasks:app", broker={"mode": "redis"}, beat=True)
    assert stack.app.send_task("reload.version").get(timeout=20) == "v1"
    old_pid = stack.process("worker:reload").pid
    module.write_text(APP_SOURCE.format(version="v2"))
    wait_until(lambda: stack.process("worker:reload").pid != old_pid, timeout=30)
    wait_until(lambda: stack.process("worker:reload").state is ProcState.READY, timeout=60)
    wait_until(lambda: stack.process("beat").state is ProcState.RUNNING, timeout=60)
    assert stack.process("worker:reload").restarts == 0, "a reload is a graceful restart, not a crash"
    assert stack.app.send_task("reload.version").get(timeout=20) == "v2"
    assert any("reloading" in line.text and "tasks.py" in line.text for line in stack.logs("worker:reload"))


TOP_APP = '''
from celery import Celery

app = Celery("toplevel_app", include=["toplevel_jobs"])
app.conf.task_default_queue = "toplevel"
'''

TOP_JOBS = '''
from toplevel_app import app


@app.task(name="toplevel.version")
def version() -> str:
    return "{version}"
'''


def reload_lines(stack, name: str) -> list[str]:
    return [line.text for line in stack.logs(name) if "reloading" in line.text]


def test_only_the_apps_imported_modules_trigger_a_reload(running_stack, tmp_path, monkeypatch):
    """-A mod:app at a project's top level: a new script in tools/ restarts nothing; editing a task module
    the app includes restarts the workers, and the log names that file."""
    project = tmp_path / "project"
    (project / "tools").mkdir(parents=True)
    (project / "toplevel_app.py").write_text(TOP_APP)
    jobs = project / "toplevel_jobs.py"
    jobs.write_text(TOP_JOBS.format(version="v1"))
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("PYTHONPATH", str(project))
    for name in ("toplevel_app", "toplevel_jobs"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    stack = running_stack(app="toplevel_app:app", broker={"mode": "redis"}, beat=False)
    assert stack.app.send_task("toplevel.version").get(timeout=20) == "v1"
    old_pid = stack.process("worker:toplevel").pid
    (project / "tools" / "x.py").write_text("print('a script')\n")
    (project / "scratch.py").write_text("print('not imported')\n")
    time.sleep(2)  # the watcher's debounce is 0.4 s: a reload would have begun by now
    assert reload_lines(stack, "worker:toplevel") == []
    assert stack.process("worker:toplevel").pid == old_pid
    jobs.write_text(TOP_JOBS.format(version="v2"))
    wait_until(lambda: stack.process("worker:toplevel").pid != old_pid, timeout=30)
    wait_until(lambda: stack.process("worker:toplevel").state is ProcState.READY, timeout=60)
    assert stack.app.send_task("toplevel.version").get(timeout=20) == "v2"
    assert reload_lines(stack, "worker:toplevel") == ["[stalk] reloading: toplevel_jobs.py changed"]
    assert reload_lines(stack, "stalk") == ["[stalk] reloading: toplevel_jobs.py changed"]
