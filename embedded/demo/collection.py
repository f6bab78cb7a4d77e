"""Collection and processing tasks from the trend seed: plugins collect items, a processor turns pending items
into trends. `collect_all_plugins` is a group (joined by a summary), `collect_and_process` a chain."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from celery import chain, group

from stalk.embedded.demo import assets, sim, store, text
from stalk.embedded.demo.base import app, replace
from stalk.embedded.demo.sim import TransientError


def require_plugin(name: str) -> dict:
    plugin = assets.plugin(name)
    if plugin is None:
        known = ", ".join(p["name"] for p in assets.plugins())
        raise ValueError(f"unknown plugin {name!r} (known: {known})")
    return plugin


@app.task(bind=True, name="demo.collect_from_plugin", max_retries=3)
def collect_from_plugin(self, name: str) -> dict:
    """Collect a batch of items from one plugin into the pending items."""
    plugin = require_plugin(name)
    if not plugin.get("enabled", True):
        return {"plugin": name, "items_collected": 0, "item_ids": [], "skipped": "disabled"}
    rng = sim.rng_for(self, name)
    try:
        sim.progress(self, 0, 2, f"fetching {name}")
        sim.work(self, rng, 0.3, 1.2)
        sim.maybe_fail(self, rng, f"{name} API")
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=sim.backoff(self, rng)) from None
    sim.progress(self, 1, 2, "saving items")
    items = rng.sample(plugin["items"], k=rng.randint(1, len(plugin["items"])))
    batch = (self.request.id or f"{time.time():.6f}")[:8]
    now = time.time()
    rows = [(f"{name}:{batch}:{i}", name, it["title"], it["url"], max(0, it["score"] + rng.randint(-20, 60)), now)
            for i, it in enumerate(items)]
    with store.connect(self.app) as conn:
        conn.executemany("INSERT OR IGNORE INTO items(id, plugin, title, url, score, collected) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
    return {"plugin": name, "items_collected": len(rows), "item_ids": [r[0] for r in rows]}


@app.task(name="demo.summarize_collection")
def summarize_collection(results: list[dict]) -> dict:
    """The join of a collection group: totals per plugin."""
    by_plugin = {r["plugin"]: r["items_collected"] for r in results}
    return {"plugins": len(results), "items_collected": sum(by_plugin.values()), "by_plugin": by_plugin}


def _collect_group(task: Any, names: list[str]) -> Any:
    if not names:
        return {"plugins": 0, "items_collected": 0, "by_plugin": {}}
    return replace(task, group(collect_from_plugin.s(n) for n in names) | summarize_collection.s())


@app.task(bind=True, name="demo.collect_all_plugins")
def collect_all_plugins(self) -> Any:
    """Collect from every enabled plugin in parallel (a group), then total the results."""
    return _collect_group(self, [p["name"] for p in assets.plugins() if p.get("enabled", True)])


@app.task(bind=True, name="demo.collect_high_frequency")
def collect_high_frequency(self) -> Any:
    """Collect from the fast-moving sources only (every 15 minutes in the beat schedule)."""
    return _collect_group(self, [p["name"] for p in assets.plugins()
                                 if p.get("enabled", True) and p.get("frequency") == "high"])


def _process(task: Any, where: str, params: tuple) -> dict:
    """Turn pending items into trends: count topic words, weight by score."""
    with store.connect(task.app) as conn:
        rows = conn.execute(f"SELECT id, title, score FROM items WHERE processed IS NULL AND {where}",
                            params).fetchall()
    rng = sim.rng_for(task)
    total = len(rows)
    sim.progress(task, 0, total or 1, f"processing {total} items")
    sim.work(task, rng, 0.1 + 0.01 * min(total, 100), 0.3 + 0.02 * min(total, 100))
    topics: Counter[str] = Counter()
    weight: Counter[str] = Counter()
    for _id, title, score in rows:
        for word in set(text.keywords(title, 4)):
            topics[word] += 1
            weight[word] += score
    now = time.time()
    with store.connect(task.app) as conn:
        conn.execute("BEGIN IMMEDIATE")
        known = {t for (t,) in conn.execute("SELECT topic FROM trends")}
        conn.executemany("INSERT INTO trends(topic, score, mentions, updated) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(topic) DO UPDATE SET score = score + excluded.score, "
                         "mentions = mentions + excluded.mentions, updated = excluded.updated",
                         [(t, weight[t] / 100, n, now) for t, n in topics.items()])
        conn.executemany("UPDATE items SET processed = ? WHERE id = ?", [(now, r[0]) for r in rows])
        conn.execute("COMMIT")
    sim.progress(task, total, total or 1, "done")
    created = [t for t in topics if t not in known]
    return {"processed": total, "trends_created": len(created), "trends_updated": len(topics) - len(created),
            "top_topics": [t for t, _ in topics.most_common(5)]}


@app.task(bind=True, name="demo.process_pending_items", max_retries=2)
def process_pending_items(self, limit: int = 1000) -> dict:
    """Process up to `limit` pending items, oldest first."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return _process(self, "id IN (SELECT id FROM items WHERE processed IS NULL ORDER BY collected LIMIT ?)",
                    (limit,))


@app.task(bind=True, name="demo.process_collected")
def process_collected(self, collection: dict) -> dict:
    """Second link of collect_and_process: process exactly the items the collection returned."""
    ids = list(collection.get("item_ids", []))
    marks = ",".join("?" * len(ids)) or "NULL"
    result = _process(self, f"id IN ({marks})", tuple(ids))
    return {"plugin": collection.get("plugin"), "items_collected": collection.get("items_collected", 0), **result}


@app.task(bind=True, name="demo.collect_and_process")
def collect_and_process(self, name: str) -> Any:
    """Collect from one plugin, then process what it brought (a chain; same task id, final result)."""
    require_plugin(name)
    return replace(self, chain(collect_from_plugin.s(name), process_collected.s()))
