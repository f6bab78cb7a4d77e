#!/usr/bin/env python3
"""The one way in, standard library only: `python3 dev.py run` / `test [--quick]` / `lint` / `build`.

Creates .venv beside this file on first use, installs Stalk (and, for `test`, what the tests
need), then runs Stalk or the whole test suite, or builds the single-file binary dist/stalk
(PyInstaller, see packaging/). Extra arguments are passed through.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


#: The repo's folders that install under the `stalk` import package (setup.py maps them).
PACKAGE_FOLDERS = ("src", "panel", "embedded", "assets")
#: What `lint` checks with ruff.
LINTED = ("src", "embedded", "panel", "tests", "bench", "packaging", "dev.py", "setup.py")
#: `test --quick`: no real processes (no redis-server, worker, broker or binary build).
QUICK = ["-m", "not procs and not fault and not slow", "-n", "2", "-q"]


def install_key() -> str:
    """What the editable install depends on: pyproject.toml, setup.py and the list of package files.

    The install is setuptools' strict editable mode: a tree of links under build/__editable__*/stalk/
    that lays panel/ and embedded/ out as stalk.panel and stalk.embedded. Type checkers, import-linter
    and PyInstaller read that tree like any installed package (the default mode's import hook is
    invisible to them). Edits show at once; a new or removed file needs a reinstall, which this key
    notices."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py"):
        digest.update((ROOT / name).read_bytes())
    for folder in PACKAGE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".svg"):
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
    return digest.hexdigest()


def ensure_venv(extras: str) -> None:
    """Create the venv and (re)install when install_key() changed or `extras` is not installed yet
    (an install with the test extra also serves `run`: no reinstall when switching commands)."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on any python3)
        sys.exit(f"Stalk needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not PY.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".stalk-installed"
    project = install_key()
    lines = stamp.read_text().split("\n") if stamp.exists() else []
    installed = set(lines[1].split(",")) - {""} if len(lines) > 1 and lines[0] == project else None
    wanted = {extras} - {""}
    if installed is not None and wanted <= installed:
        return
    union = ",".join(sorted(wanted | (installed or set())))
    print(f"dev.py: installing Stalk{'[' + union + ']' if union else ''} into .venv", flush=True)
    spec = f".[{union}]" if union else "."
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "-e", spec,
                    "--config-settings", "editable_mode=strict"], cwd=ROOT, check=True)
    stamp.write_text(f"{project}\n{union}")


def link_tree() -> Path:
    """The editable install's tree of links (see install_key), where mypy reads `stalk` as installed."""
    for pth in VENV.glob("lib/python*/site-packages/__editable__.celery_stalk-*.pth"):
        return Path(pth.read_text().strip())
    sys.exit("dev.py: no editable install of Stalk in .venv")


def lint() -> int:
    """ruff, the import contracts (pyproject.toml [tool.importlinter]) and mypy; every one runs."""
    checks = [([str(BIN / "ruff"), "check", *LINTED], ROOT), ([str(BIN / "lint-imports"), "--no-cache"], ROOT),
              ([str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "stalk"], link_tree())]
    failed = [argv[0].rsplit("/", 1)[-1] for argv, cwd in checks if subprocess.call(argv, cwd=cwd) != 0]
    if failed:
        print(f"dev.py lint: failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        ensure_venv("")
        return subprocess.call([str(PY), "-P", "-m", "stalk", *rest])
    if command == "test":
        ensure_venv("test")
        args = QUICK + rest[1:] if rest[:1] == ["--quick"] else rest or ["-n", "2", "--dist", "loadgroup"]
        return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)
    if command == "lint":
        ensure_venv("test")
        return lint()
    if command == "build":
        ensure_venv("test")  # the test extra carries pyinstaller (the smoke test builds); one stamp, no reinstalls
        return subprocess.call([str(PY), str(ROOT / "packaging" / "build.py"), *rest], cwd=ROOT)
    sys.exit(f"usage: python3 dev.py [run|test|lint|build] [args...] (got {command!r})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
