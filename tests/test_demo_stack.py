"""The demo app's chains, groups and retries end to end on real `stalk worker` children (redis broker)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from celery.result import AsyncResult

from stalk.embedded import Stack
from stalk.embedded.demo.load import Job, LoadGenerator

from .conftest import clean_env, module_stack, stalk_cmd

pytestmark = [pytest.mark.procs, pytest.mark.xdist_group("demo")]
FAST = {"STALK_DEMO_SPEED": "40", "STALK_DEMO_FAILURE_RATE": "0"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One demo stack (the app's own two-worker layout) for the module; work 40x faster, no random failures."""
    with module_stack(tmp_path_factory.mktemp("demo") / "data", FAST, broker={"mode": "redis"},
                      beat=False) as running:
        yield running


def run(stack: Stack, name: str, *args, timeout: float = 30, **kwargs) -> AsyncResult:
    result = stack.app.send_task(name, args, kwargs)
    result.get(timeout=timeout, propagate=False)
    return result


def test_each_task_runs_on_the_worker_of_its_queue(stack):
    expected = {
        ("demo.analyze_youtube", ("https://youtu.be/dQw4w9WgXcQ",)): "slow",
        ("demo.process_webpage", ("https://www.sqlite.org/fts5.html",)): "slow",
        ("demo.process_pending_items", (10,)): "slow",
        ("demo.cache_search", ("celery",)): "default",
        ("demo.collect_from_plugin", ("rss",)): "default",
        ("demo.health_check", ()): "default",
    }
    results = {key: stack.app.send_task(key[0], key[1]) for key in expected}
    for key, result in results.items():
        assert result.get(timeout=30) is not None
        assert result.worker.split("@")[0] == expected[key], key
    priority = stack.app.send_task("demo.analyze_youtube", ("https://youtu.be/dQw4w9WgXcQ",), {"priority": True})
    assert priority.get(timeout=30)["video_id"] == "dQw4w9WgXcQ"
    assert priority.worker.startswith("default@")  # the priority queue's worker
    assert stack.app.send_task("demo.health_check").get(timeout=30)["status"] == "healthy"


def test_ingest_is_a_chain_fetch_archive_enrich_cache(stack):
    url = "https://www.youtube.com/watch?v=3JZ_D3ELwOQ"
    result = run(stack, "demo.ingest_youtube_video", url, timeout=60)
    assert result.status == "SUCCESS", result.traceback
    assert result.result["status"] == "success" and result.result["enrichments"]["model"] == "demo-llm-small"
    archive = stack.paths.data_dir / "demo" / "archive" / "youtube" / "3JZ_D3ELwOQ.json"
    record = json.loads(archive.read_text())
    assert record["api_response"]["source"] == "api" and record["llm_outputs"][0]["output_type"] == "enrichments"
    rec = stack.events.wait_for(result.id, timeout=10)  # its id ran the chain's last task
    assert rec is not None and (rec.name, rec.replaced, rec.state) == (
        "demo.cache_video", "demo.ingest_youtube_video", "SUCCESS")
    enrich = [r for r in stack.events.query(name="demo.enrich_video", limit=None) if r.root_id == result.id]
    assert len(enrich) == 1
    done = stack.events.wait_for(enrich[0].task_id, timeout=10)  # another worker's events may come later
    # its own: sent when enrich returned, which may be before enrich's task-succeeded event is (under load,
    # 170 ms before it was seen); never before enrich started
    assert done is not None and done.started <= rec.received <= rec.started <= rec.finished
    assert [r.task_id for r in stack.events.query(search="ingest_youtube")] == [result.id]
    again = run(stack, "demo.ingest_youtube_video", url)
    assert again.result == {"status": "already_archived", "video_id": "3JZ_D3ELwOQ"}
    hits = run(stack, "demo.cache_search", "archive enrichment", 3).result["results"]
    assert hits[0]["url"] == url


def test_collect_all_plugins_is_a_group_then_processing_takes_what_it_brought(stack):
    collected = run(stack, "demo.collect_all_plugins", timeout=60)
    assert collected.status == "SUCCESS", collected.traceback
    assert set(collected.result["by_plugin"]) == {"reddit", "hackernews", "rss", "github_trending"}
    assert collected.result["items_collected"] == sum(collected.result["by_plugin"].values()) > 0
    chained = run(stack, "demo.collect_and_process", "hackernews", timeout=60)
    assert chained.status == "SUCCESS", chained.traceback
    assert chained.result["plugin"] == "hackernews"
    assert chained.result["processed"] == chained.result["items_collected"] > 0
    pending = run(stack, "demo.process_pending_items", 1000).result["processed"]
    assert pending >= collected.result["items_collected"] - 10  # all but what test 1 processed already


def test_flaky_tasks_are_retried_with_backoff(stack):
    # Outcomes are seeded by task id and attempt: these ids fail at least once and then succeed.
    results = [stack.app.send_task("demo.flaky", (0.5,), task_id=f"flaky-{i}") for i in range(1, 6)]
    attempts = [r.get(timeout=60, propagate=False) for r in results]
    assert all(r.status == "SUCCESS" for r in results), [r.result for r in results]
    assert max(a["attempts"] for a in attempts) >= 2
    doomed = run(stack, "demo.flaky", 1.0, timeout=60)
    assert doomed.status == "FAILURE" and "attempt 4" in str(doomed.result)  # 1 try + 3 retries


def test_the_load_generator_feeds_the_stack(stack):
    now = [0.0]
    load = LoadGenerator(stack.app, rate=20, clock=lambda: now[0],
                         mix=[(1, lambda r: Job("demo.add", [r.randint(0, 9), 1]))])
    for t in (0.0, 0.5, 1.0, 1.5):
        now[0] = t
        load.tick()
    assert load.snapshot()["submitted"] == 30 and load.errors == 0
    assert all(AsyncResult(i, app=stack.app).get(timeout=30) >= 1 for i in load.task_ids)


def test_stalk_demo_runs_the_stack_with_load_then_stops(tmp_path):
    argv = stalk_cmd("demo", "--broker", "redis", "--no-beat", "--data-dir", str(tmp_path / "data"),
                     "--rate", "10/s", "--duration", "2", "--seed", "11")  # seed 11: no long tasks early
    out = subprocess.run(argv, env=clean_env(**FAST), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "worker:default, worker:slow" in lines[0] and "10 tasks/s" in lines[1]
    submitted = int(re.search(r"demo: (\d+) submitted", lines[-2]).group(1))
    assert 10 <= submitted <= 21 and lines[-1] == "stalk: stopping..."
