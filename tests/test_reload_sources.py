"""What hot reload watches, without processes: the app's project files it imported, nothing else."""

from __future__ import annotations

import sys
import types

from watchfiles import Change

from stalk.embedded.reload_sources import SourceWatch, imported_sources, project_root


def module(name: str, file: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = file
    return mod


def test_the_root_is_where_the_top_level_package_is_imported_from(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    monkeypatch.setitem(sys.modules, "proj.celery", module("proj.celery", str(tmp_path / "proj" / "celery.py")))
    monkeypatch.setitem(sys.modules, "proj", module("proj", str(tmp_path / "proj" / "__init__.py")))
    monkeypatch.setitem(sys.modules, "solo_app", module("solo_app", str(tmp_path / "solo_app.py")))
    assert project_root("proj.celery:app") == tmp_path.resolve()
    assert project_root("proj") == tmp_path.resolve()
    assert project_root("solo_app:app") == tmp_path.resolve()
    assert project_root("not_imported:app") is None


def test_only_imported_project_files_are_watched(tmp_path):
    root = tmp_path.resolve()
    site = sys.modules["celery"].__file__
    mods = [module("solo_app", str(root / "solo_app.py")), module("jobs", str(root / "jobs.py")),
            module("celery", site), module("stalk.x", str(root / "stalk" / "x.py")),
            module("data", str(root / "data.so"))]
    files = imported_sources(root, mods)
    assert files == {root / "solo_app.py", root / "jobs.py"}
    watch = SourceWatch(root, files)
    assert watch.dirs == [root]
    assert watch(Change.modified, str(root / "jobs.py"))
    assert not watch(Change.added, str(root / "tools" / "x.py"))
    assert not watch(Change.added, str(root / "scratch.py"))
    assert watch.describe({str(root / "jobs.py")}) == "jobs.py"
