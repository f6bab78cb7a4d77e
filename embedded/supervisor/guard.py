"""No orphans: the parent side arms each child; the child side watches its parent.

Parent side: every child gets its own process group, PR_SET_PDEATHSIG(SIGTERM) and the read end
of a pipe whose write end only Stalk holds. Child side (`stalk worker`/`stalk beat`): a thread
blocks on that pipe; EOF means Stalk died (even by SIGKILL), so the child ends its whole group.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

WATCHDOG_ENV = "STALK_WATCHDOG_FD"
PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent thread dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def child_preexec() -> None:
    """Runs in the forked child before exec: die with the parent."""
    set_pdeathsig(signal.SIGTERM)


def make_watchdog_pipe() -> tuple[int, int]:
    """(read_fd for the child, write_fd Stalk keeps open until it exits)."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(read_fd, True)
    return read_fd, write_fd


def install_watchdog(grace: float = 10.0) -> threading.Thread | None:
    """In a child: end this process group once the parent's pipe closes."""
    fd_text = os.environ.pop(WATCHDOG_ENV, None)
    if not fd_text:
        return None
    fd = int(fd_text)
    thread = threading.Thread(target=_watch, args=(fd, grace), name="stalk-watchdog", daemon=True)
    thread.start()
    return thread


def _watch(fd: int, grace: float) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    group = os.getpgrp()
    _signal_group(group, signal.SIGTERM)
    time.sleep(grace)
    _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass
