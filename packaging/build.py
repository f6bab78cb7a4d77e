"""Build the `stalk` binary with PyInstaller, once per set of sources (standard library only).

    .venv/bin/python packaging/build.py [--force] [--print-path] [--verbose]

The build lands in build/binary/<key>/ where <key> hashes everything that goes into it: the
sources (src/, embedded/, panel/, assets/, packaging/), pyproject.toml, every installed distribution's
version, the Python version and the redis-server that gets bundled. An unchanged key reuses the
build, so tests and benches build at most once. The single file is copied to dist/stalk.
Layout of a build: stalk (single file), onedir/stalk (+ onedir/_internal), licenses/, build.json.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "stalk.spec"
CACHE = ROOT / "build" / "binary"
SOURCES = ("src", "embedded", "panel", "assets", "packaging")
KEEP_BUILDS = 2


def source_files() -> list[Path]:
    files = [ROOT / "pyproject.toml"]
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".svg"):
                files.append(path)
    return files


def build_key() -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest.update("\n".join(dists).encode())
    digest.update(f"{sys.version}|{platform.machine()}|{os.environ.get('STALK_BUNDLE_REDIS', '1')}".encode())
    redis = os.environ.get("STALK_BUNDLE_REDIS_SERVER") or shutil.which("redis-server")
    if redis:
        stat = os.stat(redis)
        digest.update(f"{os.path.realpath(redis)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def run_pyinstaller(out: Path, quiet: bool, verbose: bool) -> None:
    work = out / "work"
    argv = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "INFO" if verbose else "WARN",
            "--distpath", str(out / "dist"), "--workpath", str(work), str(SPEC)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(((result.stdout or "") + (result.stderr or "")).splitlines()[-40:])
        raise SystemExit(f"packaging/build.py: PyInstaller failed (exit {result.returncode})\n{tail}")


def arrange(out: Path, seconds: float) -> dict:
    """Move PyInstaller's output into the cache layout and describe it in build.json."""
    dist = out / "dist"
    (dist / "stalk").replace(out / "stalk")
    onedir = dist / "stalk-onedir"
    (onedir / "stalk-onedir").replace(onedir / "stalk")  # the bootloader finds _internal/ by location
    onedir.replace(out / "onedir")
    licences = out / "onedir" / "_internal" / "licenses"
    if licences.is_dir():
        shutil.copytree(licences, out / "licenses")
    shutil.rmtree(out / "work", ignore_errors=True)
    shutil.rmtree(dist, ignore_errors=True)
    info = {
        "key": out.name,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 1),
        "onefile_bytes": (out / "stalk").stat().st_size,
        "onedir_bytes": sum(p.stat().st_size for p in (out / "onedir").rglob("*") if p.is_file()),
        "redis_server_bundled": (out / "onedir" / "_internal" / "redis-server").is_file(),
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def prune(keep: Path) -> None:
    """Drop older builds: each is ~70 MB."""
    builds = sorted((p for p in CACHE.iterdir() if p.is_dir() and p != keep), key=lambda p: p.stat().st_mtime)
    for old in builds[: max(0, len(builds) - (KEEP_BUILDS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def build(force: bool = False, quiet: bool = False, verbose: bool = False) -> Path:
    """The cached build directory for the current sources, building it first if needed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / build_key()
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel tests, a bench)
        if force or not (out / "build.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if not quiet:
                print(f"packaging/build.py: building {out.relative_to(ROOT)} (a few minutes)", flush=True)
            start = time.monotonic()
            run_pyinstaller(out, quiet, verbose)
            arrange(out, time.monotonic() - start)
            prune(out)
        os.utime(out)
    return out


def publish(out: Path) -> Path:
    """Copy the single file (and the licences it carries) to dist/ for people, not tests."""
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    shutil.copy2(out / "stalk", dist / "stalk.tmp")
    (dist / "stalk.tmp").replace(dist / "stalk")
    if (out / "licenses").is_dir():
        shutil.rmtree(dist / "licenses", ignore_errors=True)
        shutil.copytree(out / "licenses", dist / "licenses")
    return dist / "stalk"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if a build for these sources exists")
    parser.add_argument("--print-path", action="store_true", help="print only the build directory (for scripts)")
    parser.add_argument("--verbose", action="store_true", help="show PyInstaller's INFO log")
    args = parser.parse_args()
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        sys.exit("packaging/build.py: PyInstaller is not installed: .venv/bin/pip install -e '.[build]'")
    out = build(force=args.force, quiet=args.print_path, verbose=args.verbose)
    if args.print_path:
        print(out)
        return 0
    binary = publish(out)
    info = json.loads((out / "build.json").read_text())
    redis = "bundled redis-server" if info["redis_server_bundled"] else "no redis-server bundled"
    print(f"{binary.relative_to(ROOT)}: {info['onefile_bytes'] / 1e6:.1f} MB single file ({redis}); "
          f"onedir build in {(out / 'onedir').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
