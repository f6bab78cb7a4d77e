"""`stalk quota`: each quota's used / reserve / remaining and reset time for a data dir."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import pytest

from stalk.embedded.paths import StackPaths
from stalk.embedded.quota import QuotaLedger, QuotaSpec

from .conftest import clean_env, stalk_cmd

pytestmark = pytest.mark.procs  # every test runs the real CLI, `python -m stalk quota`


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stalk_cmd("quota", *args), capture_output=True, text=True, env=clean_env(),
                          timeout=60)


def fill(data_dir) -> StackPaths:
    paths = StackPaths(data_dir)
    with QuotaLedger(paths.quota_db) as ledger:
        ledger.define(QuotaSpec("youtube", 10_000, 1_000, "America/Los_Angeles", costs={"search.list": 100}))
        ledger.define(QuotaSpec("llm", 500))
        for i in range(91):
            ledger.reserve("youtube", "search.list", f"k{i}", priority=i == 90)
    return paths


def test_table(tmp_path):
    fill(tmp_path)
    out = run("--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["QUOTA", "USED", "RESERVE", "REMAINING", "LIMIT"]
    youtube = next(line for line in lines if line.startswith("youtube"))
    assert youtube.split()[1:5] == ["9,100", "900", "0", "10,000"]
    assert "America/Los_Angeles" in youtube and "EXHAUSTED (priority calls only)" in youtube
    llm = next(line for line in lines if line.startswith("llm"))
    assert llm.split()[1:5] == ["0", "0", "500", "500"] and "UTC" in llm


def test_json(tmp_path):
    fill(tmp_path)
    out = run("--data-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = {q["name"]: q for q in json.loads(out.stdout)}
    youtube = data["youtube"]
    assert (youtube["used"], youtube["reserved"], youtube["remaining"], youtube["limit"]) == (9100, 900, 0, 10000)
    assert datetime.fromisoformat(youtube["resets_at"]).utcoffset() is not None
    assert youtube["exhausted"] is True and len(youtube["hourly"]) == 24


def test_group_level_data_dir_and_no_db(tmp_path):
    out = subprocess.run(stalk_cmd("--data-dir", str(tmp_path), "quota"), capture_output=True, text=True,
                         env=clean_env(), timeout=60)
    assert out.returncode == 0 and "no quotas defined" in out.stdout
    assert not StackPaths(tmp_path).quota_db.exists()
    assert json.loads(run("--data-dir", str(tmp_path), "--json").stdout) == []


def test_corrupt_db_is_one_line_and_untouched(tmp_path):
    paths = StackPaths(tmp_path)
    paths.state.mkdir(parents=True)
    paths.quota_db.write_bytes(b"\x00garbage" * 64)
    before = paths.quota_db.read_bytes()
    out = run("--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.startswith("stalk: error: quota db ") and "corrupt" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert paths.quota_db.read_bytes() == before
