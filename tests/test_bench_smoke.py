"""bench/panel_load.py in its quick mode: it runs the app under load to the end and reports numbers.
No timing is asserted (speed is read from the bench's own output, as ratios)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent
RESULT = re.compile(r"RESULT p50_ms=([\d.]+) p99_ms=([\d.]+) max_ms=([\d.]+) "
                    r"rss_start_mb=([\d.]+) rss_end_mb=([\d.]+)")


@pytest.mark.procs
@pytest.mark.slow
def test_panel_load_quick_mode_reports_latency_and_rss():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "panel_load.py"), "--quick"], cwd=ROOT,
                         env=clean_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    found = RESULT.search(run.stdout)
    assert found, run.stdout[-3000:]
    assert all(float(value) > 0 for value in found.groups())
    assert "reference: idle store" in run.stdout and "key -> repaint, all" in run.stdout


@pytest.mark.procs
@pytest.mark.slow
@pytest.mark.parametrize(("flags", "transport"), [([], "Stalk's"), (["--stock-transport"], "kombu's stock")])
def test_stack_throughput_runs_its_three_workers_and_reports_ratios(flags, transport):
    """Stalk's stack and two plain workers (events off and -E) on one redis-server, tiny rounds."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "stack_throughput.py"), "--tasks", "20", "--rounds", "1",
                          *flags], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Stalk on {transport} redis transport" in run.stdout
    ratios = re.findall(r"ratio stalk/(plain|plain -E), per round: median ([\d.]+)x", run.stdout)
    assert [name for name, _ in ratios] == ["plain", "plain -E"], run.stdout[-3000:]
    assert all(float(value) > 0 for _, value in ratios)
    assert re.search(r"stalk +tasks/s median +[\d.]+ .*CPU ms/task: worker [\d.]+", run.stdout)


@pytest.mark.procs
@pytest.mark.slow
def test_flower_bench_stalk_only_measures_stalks_flower_api():
    """bench/flower.py's Stalk side alone (Flower's venv is never made here): `stalk up`, synthetic task
    events counted by its /metrics, the task list, RSS and async-apply from the load client."""
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "flower.py"), "--stalk-only", "--tasks", "300",
                          "--requests", "10", "--seconds", "0.5", "--rounds", "1"], cwd=ROOT, env=clean_env(),
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    found = re.search(r"RESULT tasks=(\d+) stalk_apply_rps=([\d.]+) stalk_p99_ms=([\d.]+) stalk_rss_mb=([\d.]+)",
                      run.stdout)
    assert found, run.stdout[-3000:]
    assert int(found.group(1)) == 300
    assert all(float(value) > 0 for value in found.groups()[1:])
    assert "300 tasks' events (4 each) published" in run.stdout and "counted by Stalk" in run.stdout
    assert "non-200" not in run.stdout and "making bench/.venv-flower" not in run.stdout
    assert "target" not in run.stdout  # no ratios without Flower
