"""Hot reload: editing the -A app's source restarts workers and beat, which then run the new code."""

from __future__ import annotations

import sys

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
