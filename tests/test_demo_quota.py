"""The demo's metered YouTube task on a real worker: charged once per task id, cache fallback when the
quota is out, and priority calls waiting for the quota's reset in steps shorter than the visibility
timeout, uncharged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stalk.embedded import Stack
from stalk.embedded.demo.base import QUEUES
from stalk.embedded.quota import QuotaLedger

from .conftest import module_stack, wait_until

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("demo")]
FAST = {"STALK_DEMO_SPEED": "40", "STALK_DEMO_FAILURE_RATE": "0"}
KNOWN = "https://youtu.be/kJQP7kiw5Fk"  # in the fixtures, so in the cache
VISIBILITY = 6  # seconds: a priority call waits for the reset in steps of 3 s


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One worker consuming every demo queue: enough for these tests, lighter than the default layout."""
    workers = [{"name": "all", "queues": list(QUEUES), "concurrency": 2}]
    with module_stack(tmp_path_factory.mktemp("demo-quota") / "data", FAST,
                      broker={"mode": "redis", "visibility_timeout": VISIBILITY}, beat=False,
                      workers=workers) as running:
        yield running



def used(stack: Stack) -> int:
    with QuotaLedger(stack.paths.quota_db) as ledger:
        return ledger.status("youtube").used


def analyze(stack: Stack, url: str, task_id: str | None = None, priority: bool = False):
    return stack.app.send_task("demo.analyze_youtube", (url,), {"priority": priority}, task_id=task_id)


def test_metered_analysis_is_charged_once_per_task_id_and_falls_back_or_waits_when_spent(stack):
    start = used(stack) if stack.paths.quota_db.exists() else 0
    first = analyze(stack, KNOWN, task_id="yt-1").get(timeout=30)
    assert first["source"] == "api"
    assert analyze(stack, KNOWN, task_id="yt-1").get(timeout=30)["source"] == "api"  # a redelivery
    analyze(stack, "https://youtu.be/newvideo01", task_id="yt-2").get(timeout=30)
    assert used(stack) - start == 2 * 51

    with QuotaLedger(stack.paths.quota_db) as ledger:  # spend what normal calls may use
        status = ledger.status("youtube")
        ledger.reserve("youtube", status.remaining, "test-spend")
        resets_at = status.resets_at
    cached = analyze(stack, KNOWN).get(timeout=30)
    assert cached["source"] == "cache" and cached["metadata"]["title"].startswith("Rate limits")
    missing = analyze(stack, "https://youtu.be/notcached1")
    missing.get(timeout=30, propagate=False)
    assert missing.status == "FAILURE" and "exhausted" in str(missing.result)
    assert analyze(stack, KNOWN, priority=True).get(timeout=30)["source"] == "api"  # the priority reserve

    with QuotaLedger(stack.paths.quota_db) as ledger:  # now spend the reserve too
        ledger.reserve("youtube", ledger.status("youtube").reserved, "test-spend-reserve", priority=True)
        spent = ledger.status("youtube").used
    waiting = analyze(stack, KNOWN, priority=True)
    wait_until(lambda: waiting.state == "RETRY")
    asked = datetime.now(UTC)
    first = wait_until(lambda: scheduled_eta(stack, waiting.id))
    assert first < resets_at  # a step towards the reset, never an ETA past the visibility timeout
    assert first - asked < timedelta(seconds=VISIBILITY)
    later = wait_until(lambda: (eta := scheduled_eta(stack, waiting.id)) and eta > first and eta)
    assert later - first >= timedelta(seconds=VISIBILITY / 2 - 1)  # the next waiting step
    stack.app.control.revoke(waiting.id)
    with QuotaLedger(stack.paths.quota_db) as ledger:  # waiting steps charge nothing, deny nothing
        assert ledger.status("youtube").used == spent
        rows = [r for r in ledger.requests("youtube") if (r.key or "").startswith(waiting.id)]
        assert [(r.key, r.state) for r in rows] == [(waiting.id, "denied")]


def scheduled_eta(stack: Stack, task_id: str) -> datetime | None:
    scheduled = (stack.app.control.inspect(timeout=2).scheduled() or {}).values()
    etas = [s["eta"] for entries in scheduled for s in entries if s["request"]["id"] == task_id]
    return datetime.fromisoformat(etas[0]) if etas else None
