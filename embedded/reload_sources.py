"""What hot reload watches: the source files of the modules the -A app imported from its project (the
app module, what it imports, its `include`/`imports`/autodiscovered task modules), not every `.py` under
the project's folder: a new script in `tools/` or a test file restarts nothing."""

from __future__ import annotations

import site
import sys
from collections.abc import Iterable
from pathlib import Path

from watchfiles import Change


def project_root(spec: str) -> Path | None:
    """The folder the app's top-level package (or module) is imported from."""
    module_name = spec.partition(":")[0]
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    return path.parents[depth] if depth < len(path.parents) else None


def _installed_dirs() -> list[Path]:
    dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages()]
    return [Path(d).resolve() for d in dirs if d]


def imported_sources(root: Path, modules: Iterable[object] | None = None) -> set[Path]:
    """The `.py` files under `root` of the imported modules (Stalk's own and installed packages left out)."""
    installed = _installed_dirs()
    found: set[Path] = set()
    for module in list(sys.modules.values()) if modules is None else modules:
        name = getattr(module, "__name__", "") or ""
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py") or name == "stalk" or name.startswith("stalk."):
            continue
        path = Path(file).resolve()
        if path.is_relative_to(root) and not any(path.is_relative_to(d) for d in installed):
            found.add(path)
    return found


class SourceWatch:
    """The files to watch and the folders holding them (watched one level deep: an editor that saves by
    renaming a new file over the old one is still seen)."""

    def __init__(self, root: Path, files: set[Path]) -> None:
        self.root = root
        self.files = files
        self.dirs = sorted({f.parent for f in files})

    @classmethod
    def for_app(cls, spec: str) -> SourceWatch | None:
        root = project_root(spec)
        files = imported_sources(root) if root is not None else set()
        return cls(root, files) if root is not None and files else None

    def __call__(self, _change: Change, path: str) -> bool:
        """watchfiles' filter: only the imported modules' files."""
        return Path(path) in self.files

    def describe(self, paths: Iterable[str]) -> str:
        """The changed files, relative to the project's folder."""
        shown = sorted(str(Path(p).relative_to(self.root)) if Path(p).is_relative_to(self.root) else p
                       for p in paths)
        return ", ".join(shown)
