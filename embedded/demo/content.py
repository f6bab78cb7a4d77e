"""Content tasks from the seeds: YouTube analysis (quota-metered), web pages and PDFs, cache search, the
URL router, and the archive-first ingestion chain (fetch -> archive -> enrich -> cache)."""

from __future__ import annotations

import time
from typing import Any

from celery import chain

from stalk.embedded import quota as quota_wait
from stalk.embedded.demo import assets, sim, store, text
from stalk.embedded.demo.base import app, replace
from stalk.embedded.demo.sim import TransientError
from stalk.embedded.quota import QuotaExhausted, metered

MAX_RETRIES = 3
# videos.list (1 unit) + captions.list (50 units) per analyzed video, as the YouTube Data API charges.
YOUTUBE_UNITS = 51


def require_video_id(url: str) -> str:
    vid = assets.video_id(str(url))
    if vid is None:
        raise ValueError(f"not a YouTube video URL: {url!r}")
    return vid


def require_http_url(url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return url


@app.task(bind=True, name="demo.analyze_youtube", max_retries=MAX_RETRIES)
def analyze_youtube(self, url: str, priority: bool = False) -> dict:
    """Fetch metadata and transcript (metered on the youtube quota), then analyze. When the quota is out:
    a normal call answers from the cache, a priority call waits for the reset (in steps shorter than the
    broker's visibility timeout, uncharged) and runs then. Eager mode has no broker to wait in: a
    priority call falls back like a normal one."""
    vid = require_video_id(url)
    until = quota_wait.waiting_until(self.request)
    if until is not None:  # a waiting step: the quota has not reset yet, the ledger is not touched
        exhausted = QuotaExhausted("youtube", until, YOUTUBE_UNITS, priority=True)
        raise quota_wait.wait(self, until, exhausted)
    try:
        return _fetch_and_analyze(self, url, priority=priority)
    except QuotaExhausted as exc:
        if priority and not self.request.is_eager:
            raise quota_wait.wait(self, exc.resets_at, exc) from None
        cached = store.cache_get(self.app, assets.canonical_video_url(vid))
        if cached is None:
            raise
        return {"source": "cache", "video_id": vid, "url": url, "quota_resets_at": exc.resets_at.isoformat(),
                "metadata": _metadata(cached), "transcript": cached.get("transcript", ""),
                "analysis": cached.get("analysis") or text.analyze(cached.get("transcript", ""))}
    except TransientError as exc:
        countdown = sim.backoff(self, sim.rng_for(self, "backoff"))
        raise quota_wait.retry_failed(self, exc, countdown, MAX_RETRIES) from None


@metered("youtube", units=YOUTUBE_UNITS)
def _fetch_and_analyze(self, url: str, priority: bool = False) -> dict:
    vid = require_video_id(url)
    rng = sim.rng_for(self)
    sim.progress(self, 0, 3, "fetching metadata")
    sim.work(self, rng, 0.2, 0.8)
    sim.maybe_fail(self, rng, "videos.list")
    video = assets.video(vid)
    sim.progress(self, 1, 3, "fetching transcript")
    sim.work(self, rng, 0.4, 1.2)
    sim.maybe_fail(self, rng, "captions.download")
    sim.progress(self, 2, 3, "analyzing")
    sim.work(self, rng, 0.2, 0.8)
    analysis = text.analyze(video["transcript"])
    result = {"source": "api", "video_id": vid, "url": url, "metadata": _metadata(video),
              "transcript": video["transcript"], "analysis": analysis, "quota_units": YOUTUBE_UNITS}
    store.cache_put(self.app, assets.canonical_video_url(vid), "youtube", video["title"],
                    f"{video['description']} {video['transcript']}", {**video, "analysis": analysis})
    return result


def _metadata(video: dict) -> dict:
    keys = ("title", "channel", "published", "duration_seconds", "views", "tags", "description")
    return {k: video[k] for k in keys if k in video}


def _process_page(task: Any, url: str, kind: str) -> dict:
    rng = sim.rng_for(task)
    try:
        sim.progress(task, 0, 2, f"fetching {kind}")
        sim.work(task, rng, 0.2, 1.0 if kind == "webpage" else 1.6)
        sim.maybe_fail(task, rng, f"GET {url}")
    except TransientError as exc:
        raise task.retry(exc=exc, countdown=sim.backoff(task, rng)) from None
    sim.progress(task, 1, 2, "extracting text")
    page = assets.page(url)
    analysis = text.analyze(page["text"])
    store.cache_put(task.app, url, kind, page["title"], page["text"], {**page, "analysis": analysis})
    return {"source": "web", "kind": kind, "url": url, "title": page["title"], "site": page.get("site", ""),
            **analysis}


@app.task(bind=True, name="demo.process_webpage", max_retries=MAX_RETRIES)
def process_webpage(self, url: str) -> dict:
    """Fetch a page, extract its text, summarize it and cache it."""
    return _process_page(self, require_http_url(url), "webpage")


@app.task(bind=True, name="demo.process_pdf", max_retries=MAX_RETRIES)
def process_pdf(self, url: str) -> dict:
    """Like process_webpage, for a PDF (slower; reports a page count)."""
    result = _process_page(self, require_http_url(url), "pdf")
    return {**result, "pages": 1 + result["words"] // 300}


@app.task(bind=True, name="demo.cache_search")
def cache_search(self, query: str, limit: int = 5) -> dict:
    """Full-text search (SQLite FTS5, bm25) over everything analyzed or fetched so far."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise ValueError(f"limit must be an integer from 1 to 100, got {limit!r}")
    results = store.cache_search(self.app, str(query), limit)
    return {"query": query, "count": len(results), "results": results}


ROUTES = {"youtube": analyze_youtube, "pdf": process_pdf, "webpage": process_webpage, "cache": cache_search}


def detect_kind(url: str) -> str:
    if assets.video_id(url):
        return "youtube"
    return "pdf" if url.lower().split("?", 1)[0].endswith(".pdf") else "webpage"


@app.task(bind=True, name="demo.route_content")
def route_content(self, url: str, process_type: str = "auto") -> dict:
    """The seed's router: send `url` to the YouTube, PDF or webpage task (or the cache) and return its id."""
    kind = detect_kind(str(url)) if process_type == "auto" else process_type
    task = ROUTES.get(kind, process_webpage)
    result = task.delay(url)
    return {"url": url, "route": kind if kind in ROUTES else "webpage", "task": task.name, "task_id": result.id}


@app.task(bind=True, name="demo.ingest_youtube_video")
def ingest_youtube_video(self, url: str, priority: bool = False) -> Any:
    """Archive-first ingestion, replaced by the chain fetch -> archive -> enrich -> cache (same task id,
    so `AsyncResult(id).get()` returns the chain's final result)."""
    vid = require_video_id(url)
    if store.archive_get(self.app, vid) is not None and not priority:
        return {"status": "already_archived", "video_id": vid}
    pipeline = chain(analyze_youtube.s(url, priority=priority), archive_video.s(), enrich_video.s(),
                     cache_video.s())
    return replace(self, pipeline)


@app.task(bind=True, name="demo.archive_video")
def archive_video(self, fetched: dict) -> dict:
    """Write the raw API response to the archive before any processing (cache answers are not archived)."""
    if fetched.get("source") != "api":
        return {**fetched, "archived": None}
    record = {"video_id": fetched["video_id"], "url": fetched["url"], "archived_at": time.time(),
              "metadata": fetched["metadata"], "transcript": fetched["transcript"], "api_response": fetched,
              "llm_outputs": []}
    path = store.archive_write(self.app, fetched["video_id"], record)
    return {**fetched, "archived": str(path)}


@app.task(bind=True, name="demo.enrich_video", max_retries=MAX_RETRIES)
def enrich_video(self, doc: dict) -> dict:
    """Simulated LLM enrichment (topics, sentiment, cost), recorded in the archive."""
    if not doc.get("archived"):
        return doc
    rng = sim.rng_for(self)
    try:
        sim.work(self, rng, 0.3, 1.0)
        sim.maybe_fail(self, rng, "LLM call")
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=sim.backoff(self, rng)) from None
    enrichments = {"summary": text.summary(doc["transcript"], 1), "topics": text.keywords(doc["transcript"], 3),
                   "sentiment": rng.choice(["positive", "neutral", "mixed"]), "model": "demo-llm-small",
                   "cost_usd": round(0.0004 + len(doc["transcript"]) * 2e-6, 6)}
    record = store.archive_get(self.app, doc["video_id"]) or {}
    record.setdefault("llm_outputs", []).append({"output_type": "enrichments", "value": enrichments,
                                                 "at": time.time()})
    store.archive_write(self.app, doc["video_id"], record)
    return {**doc, "enrichments": enrichments}


@app.task(bind=True, name="demo.cache_video")
def cache_video(self, doc: dict) -> dict:
    """Last step: put the enriched video in the search cache."""
    vid = doc["video_id"]
    if not doc.get("archived"):
        return {"status": "quota_exceeded_using_cache", "video_id": vid, "source": doc.get("source")}
    meta = doc["metadata"]
    enrichments = doc.get("enrichments", {})
    store.cache_put(self.app, assets.canonical_video_url(vid), "youtube", meta.get("title", vid),
                    f"{meta.get('description', '')} {doc['transcript']} {' '.join(enrichments.get('topics', []))}",
                    {**meta, "video_id": vid, "transcript": doc["transcript"], "analysis": doc.get("analysis"),
                     "enrichments": enrichments})
    return {"status": "success", "video_id": vid, "archived": doc["archived"], "enrichments": enrichments}
