"""One import name, `stalk`: a user's own `panel/`, `embedded/` or `stalk/` folder never stands in for Stalk,
HoloViz Panel installs beside it, and the wheel installs nothing but `stalk`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from stalk.embedded import WorkerSpec
from stalk.embedded.children import beat_argv, self_argv, worker_argv
from stalk.embedded.paths import StackPaths

from .conftest import ROOT, clean_env
from .test_stack import _read_until

VENV_BIN = Path(sys.executable).parent


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


# A project whose folders are named like Stalk's: had a child imported them in place of Stalk, it would
# die on the raise; the task imports them itself, as the user's own code does.
SHADOWING_PROJECT = {
    "panel/__init__.py": 'NAME = "user panel"\nimport os\nif os.environ.get("STALK_CHILD_DATA_DIR") is None:\n'
                         '    raise SystemExit("the user\'s panel/ was imported outside a task")\n',
    "embedded/__init__.py": 'NAME = "user embedded"\n',
    "stalk/__init__.py": 'raise SystemExit("the user\'s stalk/ folder was imported in place of Stalk")\n',
    "proj/__init__.py": "",
    "proj/celery.py": """
        from celery import Celery

        app = Celery("proj", include=["proj.tasks"])
        app.conf.task_routes = {"proj.tasks.*": {"queue": "jobs"}}
        """,
    "proj/tasks.py": """
        from proj.celery import app


        @app.task
        def whose(x: int) -> list:
            import embedded
            import panel

            return [panel.NAME, embedded.NAME, x]
        """,
}


def test_children_start_with_the_current_directory_off_sys_path():
    paths = StackPaths(Path("/tmp/unused"))
    spec = WorkerSpec(name="default", queues=["default"])
    assert self_argv() == [sys.executable, "-P", "-m", "stalk"]
    assert worker_argv("proj.celery:app", spec, paths)[:4] == [sys.executable, "-P", "-m", "stalk"]
    assert beat_argv(None, paths)[:5] == [sys.executable, "-P", "-m", "stalk", "beat"]


@pytest.mark.procs
def test_a_project_with_its_own_panel_embedded_and_stalk_folders_runs_unchanged(tmp_path):
    project = tmp_path / "project"
    write(project, SHADOWING_PROJECT)
    data = str(tmp_path / "data")
    stalk = str(VENV_BIN / "stalk")
    env = clean_env()
    up = subprocess.Popen([stalk, "up", "-A", "proj.celery:app", "--broker", "redis", "--no-beat", "--data-dir", data],
                          cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(up, "stack is up")
        sent = subprocess.run([stalk, "submit", "proj.tasks.whose", "--args", "[7]", "--wait", "--json",
                               "-A", "proj.celery:app", "--data-dir", data],
                              cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        out = json.loads(sent.stdout)
        assert out["state"] == "SUCCESS" and out["queue"] == "jobs"
        assert out["result"] == ["user panel", "user embedded", 7]
    finally:
        up.send_signal(signal.SIGINT)
        rest = up.communicate(timeout=60)[0]
    assert up.returncode == 0, rest
    assert "imported" not in rest


STAND_IN_PANEL = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "panel"
        version = "1.99.0"

        [tool.setuptools]
        packages = ["panel"]
        """,
    "panel/__init__.py": 'KIND = "holoviz panel stand-in"\n',
}


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, timeout=600)


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.mark.slow
def test_the_wheel_holds_only_stalk_and_installs_beside_holoviz_panel(tmp_path):
    pip("wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "wheels"), str(ROOT))
    (wheel,) = (tmp_path / "wheels").glob("celery_stalk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"stalk", wheel.name.split("-")[0] + "-" +
                                                      wheel.name.split("-")[1] + ".dist-info"}
    assert "stalk/embedded/demo/fixtures/youtube.json" in names and "stalk/panel/styles/app.tcss" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        assert "License-Expression: MIT" in archive.read(metadata).decode()
    # A venv that already has a top-level `panel` (HoloViz Panel's name); Stalk's dependencies come from
    # this test run's venv, so nothing is downloaded.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site_packages(venv) / "deps.pth").write_text(f"{deps}\n")
    python = str(venv / "bin" / "python")
    write(tmp_path / "standin", STAND_IN_PANEL)
    pip("wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "standin-wheel"), str(tmp_path / "standin"))
    (standin,) = (tmp_path / "standin-wheel").glob("panel-*.whl")
    pip("--python", python, "install", "--no-deps", "--quiet", str(standin))  # Panel first: Stalk must not
    pip("--python", python, "install", "--no-deps", "--quiet", str(wheel))  # overwrite any of its files
    code = ("import panel, stalk, stalk.panel.app, stalk.embedded\n"
            "from stalk import Stack, load_config\n"
            "from stalk.quota import metered, MeteredTask, QuotaExhausted\n"
            "print(panel.KIND, stalk.panel.app.__name__, stalk.__file__.startswith(sys.prefix))")
    both = subprocess.run([python, "-c", "import sys\n" + code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=clean_env())
    assert both.returncode == 0, both.stderr
    assert both.stdout.split() == ["holoviz", "panel", "stand-in", "stalk.panel.app", "True"]
    helped = subprocess.run([str(venv / "bin" / "stalk"), "--help"], capture_output=True, text=True, timeout=120,
                            env=clean_env())
    assert helped.returncode == 0 and "Usage: stalk" in helped.stdout, helped.stderr
