"""The demo Celery app and its settings: the seeds' queues and routing, a light worker layout, the
YouTube quota and the periodic schedule. Tasks are registered by the modules embedded/demo/app.py imports."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.result import allow_join_result
from kombu import Exchange, Queue

from stalk.embedded.demo.schedule import beat_schedule

QUEUES = ("priority", "youtube", "webpage", "cache", "collection", "processing", "default", "slow")

ROUTES = {
    "demo.analyze_youtube": {"queue": "youtube"},
    "demo.ingest_youtube_video": {"queue": "youtube"},
    "demo.process_webpage": {"queue": "webpage"},
    "demo.process_pdf": {"queue": "webpage"},
    "demo.route_content": {"queue": "default"},
    "demo.cache_search": {"queue": "cache"},
    "demo.archive_video": {"queue": "cache"},
    "demo.cache_video": {"queue": "cache"},
    "demo.enrich_video": {"queue": "processing"},
    "demo.collect_from_plugin": {"queue": "collection"},
    "demo.collect_all_plugins": {"queue": "collection"},
    "demo.collect_high_frequency": {"queue": "collection"},
    "demo.collect_and_process": {"queue": "collection"},
    "demo.summarize_collection": {"queue": "collection"},
    "demo.process_pending_items": {"queue": "processing"},
    "demo.process_collected": {"queue": "processing"},
    "demo.slow_add": {"queue": "slow"},
}

# Two workers (the names `stalk up` has always shown), four pool processes in all: light on 2 cores.
# Each queue is consumed; fast and urgent work (priority, cache, collection) never waits behind media work.
WORKERS = [
    {"name": "default", "queues": ["priority", "default", "cache", "collection"], "concurrency": 2},
    {"name": "slow", "queues": ["youtube", "webpage", "processing", "slow"], "concurrency": 2},
]

# The YouTube Data API's real budget: 10,000 units a day, 1,000 kept for priority calls, reset at
# midnight Pacific time.
QUOTAS = {
    "youtube": {"daily_limit": 10_000, "priority_reserve": 1_000, "timezone": "America/Los_Angeles",
                "reset_time": "00:00", "costs": {"videos.list": 1, "captions.list": 50}},
}


def priority_router(name, args, kwargs, options, task=None, **_kw):
    """`analyze_youtube(url, priority=True)` goes to the priority queue; everything else as ROUTES says."""
    if name == "demo.analyze_youtube" and (kwargs or {}).get("priority"):
        return {"queue": "priority"}
    return None


app = Celery("stalk_demo")
app.conf.update(
    task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
    task_default_queue="default",
    task_routes=[priority_router, ROUTES],
    task_track_started=True,
    result_expires=24 * 3600,
    result_extended=True,
    beat_schedule=beat_schedule(),
    stalk_workers=WORKERS,
    stalk_quotas=QUOTAS,
)


def replace(task: Any, sig: Any) -> Any:
    """`task.replace(sig)`, also in eager mode (where Celery runs the replacement inline and joins it)."""
    if task.request.is_eager:
        with allow_join_result():
            return task.replace(sig)
    return task.replace(sig)
