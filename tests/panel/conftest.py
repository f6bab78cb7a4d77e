"""Panel fixtures: one eager stack per module, local time pinned to UTC for stable snapshots."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from stalk.embedded import Stack
from tests.conftest import make_config

from .harness import close_remotes, undo_serving

os.environ["TZ"] = "UTC"
time.tzset()

SIZE = (120, 36)


@pytest.fixture(scope="module")
def eager_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A started eager stack: tasks run in process, nothing to race with."""
    # no Flower-compatible port: its address (a free port) would be a line of Stalk's own log in Logs' snapshots
    config = make_config(tmp_path_factory.mktemp("eager") / "data", broker={"mode": "eager"}, beat=False,
                         flower={"enabled": False})
    stack = Stack(config).start(wait=True, timeout=30)
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def closing_remotes() -> Iterator[None]:
    """After each test: the RemoteStacks its panels attached with are closed, and what it put on a shared
    stack for the API to serve (harness.serving) is taken off."""
    yield
    close_remotes()
    undo_serving()


@pytest.fixture(autouse=True)
def quiet_not_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pilot.press` and `pilot.pause()` wait until the app has handled everything (harness.app_quiet),
    not until the CPU looks idle: the same wait, for a condition instead of 20 ms slices."""
    import textual.app
    import textual.pilot

    from .harness import app_quiet

    monkeypatch.setattr(textual.app, "wait_for_idle", app_quiet)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", app_quiet)


@pytest.fixture(autouse=True)
def steady_cursors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text cursors stay visible (as right after a key): a blink would make snapshots a coin toss
    on a loaded machine."""
    from textual.widgets import Input, TextArea

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)
