"""The quick lane's guard: in a run that leaves `procs` tests out, a test that starts a process fails."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys

import pytest

from .conftest import SPAWNED, forbid_spawning, is_quick_lane


def test_every_way_to_start_a_process_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        forbid_spawning(patched)
        with pytest.raises(AssertionError, match="mark this test procs"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        with pytest.raises(AssertionError, match="mark this test procs"):
            asyncio.run(asyncio.create_subprocess_exec(sys.executable, "-c", "pass"))
        with pytest.raises(AssertionError, match="mark this test procs"):
            os.fork()
        with pytest.raises(AssertionError, match="mark this test procs"):
            multiprocessing.get_context("spawn").Process(target=print).start()
        assert len(SPAWNED) == 4
        SPAWNED.clear()


def test_the_lane_is_told_by_its_marker_expression(pytestconfig: pytest.Config,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STALK_QUICK", raising=False)
    for markexpr, quick in [("not procs and not fault and not slow", True), ("not procs", True), ("", False),
                            ("procs", False), ("not slow", False), ("procs or not slow", False)]:
        monkeypatch.setattr(pytestconfig.option, "markexpr", markexpr)
        assert is_quick_lane(pytestconfig) is quick, markexpr
    monkeypatch.setenv("STALK_QUICK", "1")
    assert is_quick_lane(pytestconfig)
