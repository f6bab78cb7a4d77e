"""The soak (bench/soak.py) in the suite: a user's app on Stalk's own redis with Stalk's defaults
(visibility timeout 3,600 s, prefetch, late acks), 1,100 tasks from three kinds of client, one fault of
each kind. Runs are counted per task id in a SQLite file the tasks write to."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from stalk.embedded import Stack

from .conftest import make_config

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from soak import KINDS, PROJECT, Soak, stack_flags, table  # noqa: E402

pytestmark = [pytest.mark.procs, pytest.mark.slow, pytest.mark.fault, pytest.mark.xdist_group("soak")]

TASKS, RATE, FAULT_EVERY = 1100, 25.0, 8.0  # 44 s of submissions, a fault every 8 s: each kind once
KILLS = {"worker", "child", "broker"}  # faults that can cut a run short (its task then runs again)


def test_soak_loses_and_strands_nothing_under_one_fault_of_each_kind(tmp_path):
    flags = stack_flags(tmp_path / "data", "everysec", 4)
    config = make_config(Path(flags.pop("data_dir")), **flags)
    stack = Stack(dataclasses.replace(config, app_dir=PROJECT)).start(wait=True, timeout=120)
    lines: list[str] = []
    try:
        report = Soak(stack, TASKS, RATE, FAULT_EVERY, KINDS, settle=90.0, log=lines.append).run()
    finally:
        stack.stop()
    table(report, log=lines.append)
    summary = "\n".join(lines)
    assert {fault.kind for fault in report.faults} == set(KINDS), summary
    assert all(sum(1 for s, _ in report.acked.values() if s == source) for source in ("client", "stack", "cli")), summary
    assert len(report.acked) >= TASKS * 0.95, summary  # a few sends refused while the broker was down
    assert report.lost == [], summary
    assert report.stranded == [], summary
    assert report.late == [], summary
    for task_id in report.duplicates:  # a second run only where a worker or the broker died under it
        fault = report.fault_before(sorted(report.done[task_id])[1])
        assert fault is not None and fault.kind in KILLS, summary
