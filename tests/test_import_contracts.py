"""The layers in pyproject.toml [tool.importlinter] hold, and a deliberate violation breaks them."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT, clean_env

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def package_dir() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PACKAGE_DIR")
    return ast.literal_eval(node.value)


def link_tree(into: Path) -> Path:
    """The installed layout (stalk/panel/..., stalk/embedded/...) as symlinks to the repo's files."""
    for package, folder in package_dir().items():
        for path in (ROOT / folder).rglob("*.py"):
            target = into.joinpath(*package.split("."), path.relative_to(ROOT / folder))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
    return into


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    env = clean_env(PYTHONPATH=str(tree))  # the tree is found before the installed `stalk`
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.procs  # runs lint-imports
def test_the_contracts_hold(tmp_path):
    result = lint_imports(link_tree(tmp_path / "tree"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.procs  # runs lint-imports
def test_each_contract_fails_on_a_deliberate_violation(tmp_path):
    tree = link_tree(tmp_path / "tree")
    stalk = tree / "stalk"
    (stalk / "embedded" / "violation.py").write_text("import textual\nfrom stalk.panel import app\n")
    (stalk / "embedded" / "events" / "uses_demo.py").write_text("from stalk.embedded.demo import store\n")
    (stalk / "panel" / "reaches_in.py").write_text("from stalk.embedded.events.fold import Fold\n")
    (stalk / "panel" / "patched.py").write_text("from stalk.embedded.patches import untrack\n")  # private package
    (stalk / "panel" / "cli" / "base.py").unlink()  # base, the lowest layer, now imports a command module
    (stalk / "panel" / "cli" / "base.py").write_text((ROOT / "panel" / "cli" / "base.py").read_text()
                                                    + "\nfrom stalk.panel.cli import tasks  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    out = result.stdout
    assert "0 kept, 4 broken" in out, out
    assert "stalk.embedded.violation -> textual" in out and "stalk.embedded.violation -> stalk.panel" in out
    assert "stalk.embedded.events.uses_demo -> stalk.embedded.demo" in out
    assert "stalk.panel.reaches_in -> stalk.embedded.events.fold" in out
    assert "stalk.panel.patched -> stalk.embedded.patches" in out
    assert "stalk.panel.cli.base -> stalk.panel.cli.tasks" in out


def test_the_private_list_names_every_top_level_module_of_the_stack():
    """The public-API contract lists the stack's own top-level modules (a new one must be added there) and
    its one private package, the upstream patches."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (public,) = [c for c in config if "public API" in c["name"]]
    listed = {m.removeprefix("stalk.embedded.") for m in public["forbidden_modules"] if m.count(".") == 2}
    modules = {p.stem for p in (ROOT / "embedded").glob("*.py") if p.stem != "__init__"}
    assert listed == modules | {"patches"}


@pytest.mark.procs  # a fresh python process
def test_the_stack_never_loads_textual():
    code = ("import importlib, pkgutil, sys, stalk.embedded as e\n"
            "for m in pkgutil.walk_packages(e.__path__, 'stalk.embedded.'): importlib.import_module(m.name)\n"
            "print([m for m in sys.modules if m.startswith(('textual', 'stalk.panel'))])")
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.procs  # runs ruff
def test_no_second_copy_from_the_repo_folders(tmp_path):
    """ruff bans `import panel` / `import embedded` (they would load the repo folders a second time)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import panel\nfrom embedded import Stack\n")
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    result = subprocess.run([ruff, "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), "--select",
                             "TID251", str(probe)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.count("TID251") == 2
