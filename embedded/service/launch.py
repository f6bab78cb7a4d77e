"""The stack as its own process: a panel starts `stalk up` in a session of its own and attaches to its API.

No orphans: the panel keeps the write end of a pipe whose read end the stack process watches
(STARTER_FD_ENV, as embedded/supervisor/guard.py does for workers). When it closes, the panel is gone
(even SIGKILLed) and the stack stops itself cleanly, workers warm-stopped, unless the user detached it
(POST /stack/detach): then it keeps running until `stalk down`.

The stack process's output goes to its own log (logs/stack.log), never to the panel's terminal; in its
own session, a Ctrl-C or a hang-up of that terminal does not reach it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stalk.embedded.children import self_argv
from stalk.embedded.paths import StackPaths
from stalk.embedded.safe_files import open_append, secure_data_dir
from stalk.embedded.service.client import ApiError, StackClient
from stalk.embedded.status_file import pid_alive, read_status

if TYPE_CHECKING:
    from stalk.embedded.stack import Stack

STARTER_FD_ENV = "STALK_STARTER_FD"  # the read end of the pipe the starting panel holds open
STACK_LOG = "stack.log"  # in the data dir's logs/: what the stack process prints
API_WAIT = 120.0  # s a started stack process may take to serve its API


class StackProcess:
    """`stalk up <args>` started by a panel: `start()`, then `connect()` once its API answers."""

    def __init__(self, up_args: list[str], data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.argv = [*self_argv(), "up", *up_args]
        self.env = env or {}  # secrets (a broker URL's password) travel here, never in argv
        self.paths = StackPaths(data_dir)
        self.log = self.paths.logs / STACK_LOG
        self.popen: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None  # write end: open while this process lives

    def start(self) -> None:
        """Spawn it (UnsafeDataDir, OSError when it cannot be)."""
        secure_data_dir(self.paths)
        read_fd, self._pipe = os.pipe()
        out = open_append(self.log)
        try:
            # a frozen Stalk: the stack process unpacks its own copy (the panel's goes when the panel does)
            env = {**os.environ, **self.env, STARTER_FD_ENV: str(read_fd), "PYINSTALLER_RESET_ENVIRONMENT": "1"}
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                          pass_fds=(read_fd,), start_new_session=True)
        finally:
            os.close(read_fd)
            os.close(out)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def exited(self) -> int | None:
        """Its exit code once it has ended, else None."""
        return self.popen.poll() if self.popen is not None else None

    def connect(self, timeout: float = API_WAIT, stop: threading.Event | None = None) -> StackClient:
        """A client once the process serves its API; ApiError(0) with the log's last lines if it ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            code = self.exited()
            if code is not None:
                raise ApiError(0, f"the stack process ended (exit {code}): {self.last_words()}")
            status = read_status(self.paths.state)
            if status is not None and status.get("pid") == self.pid and status.get("api"):
                client = StackClient.on_data_dir(self.paths.data_dir)
                try:
                    client.get("/health")
                    return client
                except ApiError:
                    client.close()
            time.sleep(0.1)
        raise ApiError(0, f"the stack process did not serve its API within {timeout:.0f} s; see {self.log}")

    def last_words(self, lines: int = 3) -> str:
        """The end of its log: why it ended."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"see {self.log}"
        return " / ".join(line.strip() for line in text[-lines:]) or f"see {self.log}"

    def wait(self, timeout: float) -> int | None:
        if self.popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.popen.wait(timeout)
        return None

    def let_go(self) -> None:
        """Close our end of the pipe: a stack not detached stops itself."""
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None


def watch_starter(stack: Stack, on_gone: Callable[[], None] | None = None) -> threading.Thread | None:
    """In the stack process (`stalk up`) started by a panel: stop the stack when that panel goes away,
    unless it was detached first. None when no panel started this process."""
    fd_text = os.environ.pop(STARTER_FD_ENV, None)
    if not fd_text:
        return None
    try:
        fd = int(fd_text)
        os.set_inheritable(fd, False)  # the workers must not hold it
    except (ValueError, OSError):
        return None

    def detached() -> None:
        stack.note("[stalk] detached: the stack keeps running; `stalk attach` to look, `stalk down` to stop it")

    stack.on_detach = detached

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        with contextlib.suppress(OSError):
            os.close(fd)
        if stack.detached.is_set():
            return
        stack.note("[stalk] the panel that started this stack is gone: stopping it")
        stack.request_stop()
        if on_gone is not None:
            on_gone()

    thread = threading.Thread(target=watch, name="stalk-starter-watch", daemon=True)
    thread.start()
    return thread


def wait_gone(data_dir: Path, pid: int, timeout: float) -> bool:
    """True once the stack process `pid` on `data_dir` has ended (its status file is gone with it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(StackPaths(data_dir).state)
        if status is None or status.get("pid") != pid:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # a child of ours (tests): reap it
            if not pid_alive(pid):
                return True
        time.sleep(0.1)
    return False

