"""Periodic upkeep (health check, cleanup, quota notice) and the tasks that demonstrate control:
`long_running` to revoke or terminate, `flaky` to watch retries, `fail` for a traceback."""

from __future__ import annotations

import logging
import shutil
import time

from stalk.embedded.demo import sim, store
from stalk.embedded.demo.base import app
from stalk.embedded.demo.sim import TransientError

log = logging.getLogger(__name__)


@app.task(bind=True, name="demo.health_check")
def health_check(self) -> dict:
    """Broker reachable, demo database readable, disk not full."""
    checks: dict[str, dict] = {}
    started = time.monotonic()
    try:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
        checks["broker"] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    except Exception as exc:
        checks["broker"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        with store.connect(self.app) as conn:
            cached = conn.execute("SELECT count(*) FROM cache").fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM items WHERE processed IS NULL").fetchone()[0]
        checks["database"] = {"ok": True, "cached_items": cached, "pending_items": pending}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    usage = shutil.disk_usage(store.demo_dir(self.app))
    free = usage.free / usage.total
    checks["disk"] = {"ok": free > 0.05, "free_percent": round(free * 100, 1)}
    status = "healthy" if all(c["ok"] for c in checks.values()) else "degraded"
    if status != "healthy":
        log.warning("demo health check: %s", checks)
    return {"status": status, "checks": checks}


@app.task(bind=True, name="demo.cleanup_old_data")
def cleanup_old_data(self, days: int = 30) -> dict:
    """Delete processed items, stale trends and fetched cache entries older than `days` (the archive stays)."""
    if not isinstance(days, (int, float)) or isinstance(days, bool) or days < 0:
        raise ValueError(f"days must be a number >= 0, got {days!r}")
    cutoff = time.time() - days * 86400
    with store.connect(self.app) as conn:
        conn.execute("BEGIN IMMEDIATE")
        items = conn.execute("DELETE FROM items WHERE processed IS NOT NULL AND processed < ?", (cutoff,)).rowcount
        trends = conn.execute("DELETE FROM trends WHERE updated < ?", (cutoff,)).rowcount
        cached = conn.execute("DELETE FROM cache WHERE updated < ? AND json_extract(data, '$.source') IS NOT "
                              "'fixture'", (cutoff,)).rowcount
        conn.execute("COMMIT")
    return {"days": days, "items_deleted": items, "trends_deleted": trends, "cache_deleted": cached}


@app.task(bind=True, name="demo.quota_reset_notice")
def quota_reset_notice(self, name: str = "youtube") -> dict:
    """Runs just after the quota's reset (in its own timezone): logs the fresh budget."""
    try:
        from stalk.embedded.quota import ledger_for_app
    except ImportError:
        return {"quota": name, "status": "quota ledger not available"}
    status = ledger_for_app(self.app).status(name)
    notice = {"quota": name, "limit": status.limit, "used": status.used, "remaining": status.remaining,
              "resets_at": status.resets_at.isoformat()}
    log.info("quota %s reset: %s of %s units available until %s", name, status.remaining, status.limit,
             notice["resets_at"])
    return notice


@app.task(bind=True, name="demo.long_running")
def long_running(self, seconds: float = 60.0) -> dict:
    """Sleep `seconds` (not scaled by the demo speed) in half-second steps with PROGRESS: revoke it with
    terminate to see it stop mid-way."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 86400:
        raise ValueError(f"seconds must be from 0 to 86400, got {seconds!r}")
    steps = max(1, int(seconds * 2))
    for i in range(steps):
        sim.progress(self, i, steps, f"working ({i / 2:.0f}/{seconds:g} s)")
        time.sleep(seconds / steps)
    return {"slept": seconds}


@app.task(bind=True, name="demo.flaky", max_retries=3)
def flaky(self, p_fail: float = 0.5) -> dict:
    """Fail with probability `p_fail` per attempt (seeded by task id and attempt); retried with backoff."""
    if not isinstance(p_fail, (int, float)) or not 0 <= p_fail <= 1:
        raise ValueError(f"p_fail must be from 0 to 1, got {p_fail!r}")
    rng = sim.rng_for(self)
    try:
        sim.work(self, rng, 0.05, 0.3)
        sim.maybe_fail(self, rng, "flaky dependency", rate=p_fail)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=sim.backoff(self, rng)) from None
    return {"attempts": (self.request.retries or 0) + 1}


def _parse_config(raw: dict) -> int:
    return int(raw["retries"])


@app.task(name="demo.fail")
def fail(message: str = "the demo task failed on purpose") -> None:
    """Always fails, with a chained exception, for the traceback view."""
    try:
        _parse_config({"timeout": "30s"})
    except KeyError as exc:
        raise RuntimeError(message) from exc
