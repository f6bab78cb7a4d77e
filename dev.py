#!/usr/bin/env python3
"""The one way in, standard library only: `python3 dev.py run` / `test` / `lint` / `build`.

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


def ensure_venv(extras: str) -> None:
    """Create the venv and (re)install when pyproject.toml changed or `extras` is not installed yet
    (an install with the test extra also serves `run`: no reinstall when switching commands)."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on any python3)
        sys.exit(f"Stalk needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not PY.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".stalk-installed"
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    lines = stamp.read_text().split("\n") if stamp.exists() else []
    installed = set(lines[1].split(",")) - {""} if len(lines) > 1 and lines[0] == project else None
    wanted = {extras} - {""}
    if installed is not None and wanted <= installed:
        return
    union = ",".join(sorted(wanted | (installed or set())))
    print(f"dev.py: installing Stalk{'[' + union + ']' if union else ''} into .venv", flush=True)
    spec = f".[{union}]" if union else "."
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "-e", spec], cwd=ROOT, check=True)
    stamp.write_text(f"{project}\n{union}")


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        ensure_venv("")
        return subprocess.call([str(PY), "-m", "panel", *rest])
    if command == "test":
        ensure_venv("test")
        args = rest or ["-n", "2", "--dist", "loadgroup"]
        return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)
    if command == "lint":
        ensure_venv("test")
        return subprocess.call([str(BIN / "ruff"), "check", "embedded", "panel", "tests", "bench", "packaging", "dev.py"], cwd=ROOT)
    if command == "build":
        ensure_venv("test")  # the test extra carries pyinstaller (the smoke test builds); one stamp, no reinstalls
        return subprocess.call([str(PY), str(ROOT / "packaging" / "build.py"), *rest], cwd=ROOT)
    sys.exit(f"usage: python3 dev.py [run|test|lint|build] [args...] (got {command!r})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
