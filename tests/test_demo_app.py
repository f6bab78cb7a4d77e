"""The demo app without a broker: layout, routing, schedule, fixtures, and its tasks run in-process."""

from __future__ import annotations

import inspect
import pickle
import random
import subprocess
from datetime import UTC, datetime

import pytest

from stalk.embedded.celery_app import default_workers, routed_queues
from stalk.embedded.demo import assets, store
from stalk.embedded.demo.app import app
from stalk.embedded.demo.base import QUEUES
from stalk.embedded.demo.load import MIX, Job, LoadGenerator, parse_rate
from stalk.embedded.demo.schedule import zoned_crontab

from .conftest import clean_env, stalk_cmd

EXPECTED_QUEUES = {
    "demo.analyze_youtube": "youtube", "demo.ingest_youtube_video": "youtube", "demo.process_webpage": "webpage",
    "demo.process_pdf": "webpage", "demo.cache_search": "cache", "demo.collect_from_plugin": "collection",
    "demo.collect_all_plugins": "collection", "demo.collect_and_process": "collection",
    "demo.process_pending_items": "processing", "demo.enrich_video": "processing", "demo.health_check": "default",
    "demo.route_content": "default", "demo.add": "default", "demo.slow_add": "slow", "demo.long_running": "default",
}


@pytest.fixture
def in_process(tmp_path, monkeypatch):
    """Run demo tasks here (task.apply), on a temp data dir and quota db, fast and without failures."""
    monkeypatch.setitem(app.conf, "stalk_demo_data_dir", str(tmp_path))
    monkeypatch.setitem(app.conf, "stalk_quota_db", str(tmp_path / "quota.sqlite3"))
    monkeypatch.setenv("STALK_DEMO_SPEED", "100")
    monkeypatch.setenv("STALK_DEMO_FAILURE_RATE", "0")
    from stalk.embedded.quota import forget_ledgers

    yield lambda name, *args, **kwargs: app.tasks[name].apply(args, kwargs)
    forget_ledgers()


def queue_of(name: str, kwargs: dict | None = None) -> str:
    return app.amqp.router.route({}, name, (), kwargs or {})["queue"].name


def test_the_seeds_queues_are_declared_and_all_consumed_by_a_light_layout():
    assert {"youtube", "webpage", "cache", "collection", "processing", "priority", "default"} <= set(QUEUES)
    workers = default_workers(app)
    consumed = {q for w in workers for q in w.queues}
    assert set(routed_queues(app)) == set(QUEUES) == consumed
    assert [w.name for w in workers] == ["default", "slow"]
    assert sum(w.concurrency for w in workers) <= 4 and all(w.pool == "prefork" for w in workers)


@pytest.mark.parametrize(("name", "queue"), EXPECTED_QUEUES.items())
def test_routing_puts_each_task_on_its_queue(name, queue):
    assert queue_of(name) == queue


def test_priority_youtube_calls_go_to_the_priority_queue():
    assert queue_of("demo.analyze_youtube", {"priority": True}) == "priority"
    assert queue_of("demo.analyze_youtube", {"priority": False}) == "youtube"


def test_beat_schedule_names_registered_tasks_and_the_quota_notice_follows_los_angeles():
    schedule = app.conf.beat_schedule
    assert {e["task"] for e in schedule.values()} <= set(app.tasks)
    assert {"health-check", "collect-high-frequency", "process-pending-items", "cleanup-daily",
            "youtube-quota-reset-notice"} <= set(schedule)
    notice = pickle.loads(pickle.dumps(schedule["youtube-quota-reset-notice"]["schedule"]))
    assert isinstance(notice, zoned_crontab) and notice.zone == "America/Los_Angeles"
    notice.app = app
    last = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 05:00 PDT
    start, delta, _now = notice.remaining_delta(last)
    due_at = start + delta
    assert due_at.astimezone(UTC) == datetime(2026, 7, 2, 7, 1, tzinfo=UTC)  # 00:01 PDT


def test_fixtures_are_package_data():
    from importlib.resources import files

    assert (files(assets.FIXTURES) / "youtube.json").is_file()
    assert assets.fixture("youtube")["videos"]


def test_video_ids_and_made_up_content_are_deterministic():
    assert assets.video_id("https://youtu.be/dQw4w9WgXcQ?t=3") == "dQw4w9WgXcQ"
    assert assets.video_id("https://www.youtube.com/watch?v=kJQP7kiw5Fk&list=x") == "kJQP7kiw5Fk"
    assert assets.video_id("https://example.com/watch?v=kJQP7kiw5Fk") is None
    assert assets.video("unknownid1") == assets.video("unknownid1")
    assert assets.video("unknownid1")["transcript"]


def test_youtube_analysis_reports_progress_and_fills_the_cache(in_process):
    result = in_process("demo.analyze_youtube", "https://youtu.be/unknownid42")
    assert result.status == "SUCCESS", result.traceback
    assert result.result["source"] == "api" and result.result["quota_units"] == 51
    found = in_process("demo.cache_search", result.result["analysis"]["keywords"][0], limit=50).result
    assert "https://www.youtube.com/watch?v=unknownid42" in [r["url"] for r in found["results"]]


def test_cache_search_is_safe_with_any_input(in_process):
    assert in_process("demo.cache_search", 'quota" OR (', limit=3).result["count"] >= 1
    assert in_process("demo.cache_search", "", limit=3).result["count"] == 0
    bad = in_process("demo.cache_search", "x", limit=0)
    assert bad.status == "FAILURE" and "limit must be" in str(bad.result)


def test_router_picks_youtube_pdf_or_webpage(in_process):
    routes = {url: in_process("demo.route_content", url).result["task"]
              for url in ("https://youtu.be/dQw4w9WgXcQ", "https://arxiv.org/pdf/2401.01234.pdf",
                          "https://www.sqlite.org/fts5.html")}
    assert list(routes.values()) == ["demo.analyze_youtube", "demo.process_pdf", "demo.process_webpage"]


def test_bad_input_fails_with_one_clear_message(in_process):
    assert "not a YouTube video URL" in str(in_process("demo.analyze_youtube", "https://example.com").result)
    assert "unknown plugin 'nope'" in str(in_process("demo.collect_from_plugin", "nope").result)
    assert "expected an http(s) URL" in str(in_process("demo.process_webpage", "ftp://x").result)


def test_fail_raises_a_chained_exception(in_process):
    result = in_process("demo.fail")
    assert result.status == "FAILURE" and "KeyError" in result.traceback and "RuntimeError" in result.traceback


def test_cleanup_deletes_processed_items_but_keeps_the_fixtures(in_process):
    in_process("demo.collect_and_process", "hackernews")
    cleaned = in_process("demo.cleanup_old_data", days=0).result
    assert cleaned["items_deleted"] >= 1
    with store.connect(app) as conn:
        assert conn.execute("SELECT count(*) FROM cache").fetchone()[0] >= 16


def test_parse_rate():
    assert parse_rate("5") == parse_rate("5/s") == 5.0
    assert parse_rate("30/m") == 0.5 and parse_rate("3600/h") == 1.0
    for bad in ("0", "-1", "fast", "5/d", "1000"):
        with pytest.raises(ValueError, match="rate"):
            parse_rate(bad)


class FakeApp:
    """Records what the generator sends."""

    def __init__(self):
        self.conf = type("Conf", (), {"task_always_eager": False})()
        self.tasks: dict = {}
        self.sent: list[Job] = []

    def send_task(self, name, args, kwargs, **options):
        self.sent.append(Job(name, args, kwargs, options))
        return type("Result", (), {"id": f"id-{len(self.sent)}"})()


def test_the_load_generator_sends_rate_times_elapsed_and_drops_a_stall_backlog():
    now = [0.0]
    fake = FakeApp()
    gen = LoadGenerator(fake, rate=5, clock=lambda: now[0])
    for t in (0.0, 0.1, 1.0, 2.5, 4.0, 6.0, 8.0, 10.0):
        now[0] = t
        gen.tick()
    assert len(fake.sent) == 50 == gen.snapshot()["submitted"]
    now[0] = 100.0  # 90 s stall: no burst of 450
    gen.tick()
    assert len(fake.sent) == 60
    now[0] = 101.0
    gen.tick()
    assert len(fake.sent) == 65


def test_the_load_mix_is_varied_and_every_job_is_a_valid_call():
    gen = LoadGenerator(FakeApp(), rate=1, seed=3)
    jobs = [gen.next_job() for _ in range(400)]
    assert len({j.name for j in jobs}) >= 12
    for job in jobs:
        inspect.signature(app.tasks[job.name].run).bind(*job.args, **job.kwargs)
    assert len(MIX) == len({maker(random.Random(0)).name for _, maker in MIX})


@pytest.mark.procs  # runs `python -m stalk demo`
def test_stalk_demo_rejects_bad_flags_with_one_line():
    for argv, message in ((["demo", "--rate", "lots"], "rate 'lots'"),
                          (["-A", "x.y:app", "demo"], "stalk demo runs the built-in demo app")):
        out = subprocess.run(stalk_cmd(*argv), env=clean_env(), capture_output=True, text=True, timeout=60)
        (line,) = out.stderr.strip().splitlines()
        assert out.returncode == 2 and line.startswith("stalk: error: ") and message in line
