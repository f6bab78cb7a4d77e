"""`stalk submit|run-entry|chain|group` with a stack running go through its API: the stack checks its broker
(Control.preflight, counted here) and sends; the output and exit codes are a direct send's."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stalk.embedded import Stack

from .conftest import ROOT, clean_env, module_stack, stalk_cmd

pytestmark = [pytest.mark.procs]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("sends") / "data", broker={"mode": "embedded"}, beat=False) as running:
        yield running


@pytest.fixture
def checks(stack: Stack) -> Iterator[list[int]]:
    """How many broker checks the stack made (each API send makes one or two; a direct send none)."""
    assert stack.control is not None and stack.control.preflight is not None
    real, seen = stack.control.preflight, [0]

    def counted() -> None:
        seen[0] += 1
        real()

    stack.control.preflight = counted
    yield seen
    stack.control.preflight = real


def stalk(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stalk_cmd(*args, "--data-dir", str(data_dir)), cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=120)


def test_submit_goes_through_the_api(stack: Stack, checks: list[int]) -> None:
    out = stalk(stack.paths.data_dir, "submit", "demo.add", "--args", "[2, 40]", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["name"], data["queue"], data["state"], data["result"]) == ("demo.add", "default", "SUCCESS", 42)
    assert checks[0] >= 1
    bad = stalk(stack.paths.data_dir, "submit", "demo.nope")
    assert bad.returncode == 2 and bad.stdout == "" and "not registered on any worker" in bad.stderr


def test_chain_group_and_run_entry_go_through_the_api(stack: Stack, checks: list[int]) -> None:
    chained = stalk(stack.paths.data_dir, "chain", "demo.add [2, 3]", "demo.add [10]", "--wait")
    assert chained.returncode == 0 and "sent chain of 2" in chained.stdout and "result: 15" in chained.stdout
    after_chain = checks[0]
    assert after_chain >= 1
    grouped = stalk(stack.paths.data_dir, "group", "demo.add [1, 1]", "demo.add [2, 2]", "--wait")
    assert grouped.returncode == 0 and "result: [2, 4]" in grouped.stdout, grouped.stderr
    assert checks[0] > after_chain
    failed = stalk(stack.paths.data_dir, "group", "demo.add [1, 2]", 'demo.fail ["boom"]', "--wait")
    assert failed.returncode == 1 and "FAILURE" in failed.stderr and "boom" in failed.stderr
    before = checks[0]
    entry = stalk(stack.paths.data_dir, "run-entry", "health-check", "--json")
    assert entry.returncode == 0, entry.stderr
    assert json.loads(entry.stdout)["entry"] == "health-check" and checks[0] > before
    unknown = stalk(stack.paths.data_dir, "run-entry", "no-such-entry")
    assert unknown.returncode != 0 and unknown.stdout == ""
