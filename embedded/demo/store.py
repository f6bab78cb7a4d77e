"""The demo's local state: a SQLite cache with FTS5 search, collected items, and an archive of raw responses.

Everything lives in `<data dir>/demo/` (the data dir of the Stalk that started the worker), or in a
temporary dir when tasks run in-process (eager mode, scripts).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stalk.embedded import child_data_dir
from stalk.embedded.demo import assets

SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    url TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    data TEXT NOT NULL, updated REAL NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS cache_fts USING fts5(
    title, body, content='cache', content_rowid='rowid', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS cache_ai AFTER INSERT ON cache BEGIN
    INSERT INTO cache_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body); END;
CREATE TRIGGER IF NOT EXISTS cache_ad AFTER DELETE ON cache BEGIN
    INSERT INTO cache_fts(cache_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body); END;
CREATE TRIGGER IF NOT EXISTS cache_au AFTER UPDATE ON cache BEGIN
    INSERT INTO cache_fts(cache_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
    INSERT INTO cache_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body); END;
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, plugin TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL, score INTEGER NOT NULL,
    collected REAL NOT NULL, processed REAL);
CREATE INDEX IF NOT EXISTS items_pending ON items(processed, collected);
CREATE TABLE IF NOT EXISTS trends (topic TEXT PRIMARY KEY, score REAL NOT NULL, mentions INTEGER NOT NULL,
    updated REAL NOT NULL);
"""

_temp_dir: Path | None = None


def demo_dir(app: Any = None) -> Path:
    """`<data dir>/demo`: app.conf.stalk_demo_data_dir, the child data dir, or a per-process temp dir."""
    global _temp_dir
    base = (app.conf.get("stalk_demo_data_dir") if app is not None else None) or child_data_dir()
    if base:
        path = Path(base) / "demo"
    else:
        if _temp_dir is None:
            _temp_dir = Path(tempfile.mkdtemp(prefix="stalk-demo-"))
        path = _temp_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def connect(app: Any = None) -> Iterator[sqlite3.Connection]:
    """A connection to demo.sqlite3 (WAL, waits on locks), schema and seed content created on first use."""
    path = demo_dir(app) / "demo.sqlite3"
    conn = sqlite3.connect(path, timeout=15, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='items'").fetchone():
            _create(conn)
        yield conn
    finally:
        conn.close()


def _create(conn: sqlite3.Connection) -> None:
    try:  # one process creates and seeds; the others wait for its lock, then find it done
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)  # (executescript would commit a BEGIN run before it)
        for v in assets.fixture("youtube")["videos"]:
            _put(conn, assets.canonical_video_url(v["video_id"]), "youtube", v["title"],
                 f"{v['description']} {v['transcript']}", {**v, "source": "fixture"}, replace=False)
        for p in assets.fixture("webpages")["pages"]:
            kind = "pdf" if p["url"].lower().endswith(".pdf") else "webpage"
            _put(conn, p["url"], kind, p["title"], p["text"], {**p, "source": "fixture"}, replace=False)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _put(conn: sqlite3.Connection, url: str, kind: str, title: str, body: str, data: dict,
         replace: bool = True) -> None:
    conflict = ("DO UPDATE SET kind=excluded.kind, title=excluded.title, body=excluded.body, "
                "data=excluded.data, updated=excluded.updated") if replace else "DO NOTHING"
    conn.execute(f"INSERT INTO cache(url, kind, title, body, data, updated) VALUES (?, ?, ?, ?, ?, ?) "
                 f"ON CONFLICT(url) {conflict}", (url, kind, title, body, json.dumps(data), time.time()))


def cache_put(app: Any, url: str, kind: str, title: str, body: str, data: dict) -> None:
    with connect(app) as conn:
        _put(conn, url, kind, title, body, data)


def cache_get(app: Any, url: str) -> dict | None:
    with connect(app) as conn:
        row = conn.execute("SELECT data FROM cache WHERE url = ?", (url,)).fetchone()
    return json.loads(row[0]) if row else None


def fts_query(text: str, any_word: bool = False) -> str:
    """User words as quoted FTS5 terms (no FTS syntax errors from user input): all words, or any."""
    words = re.findall(r"\w+", text)
    return (" OR " if any_word else " ").join(f'"{w}"' for w in words)


def cache_search(app: Any, query: str, limit: int) -> list[dict]:
    """Best matches (bm25) for all the words, else for any of them."""
    sql = ("SELECT c.url, c.kind, c.title, snippet(cache_fts, 1, '[', ']', '…', 12), bm25(cache_fts) "
           "FROM cache_fts JOIN cache c ON c.rowid = cache_fts.rowid WHERE cache_fts MATCH ? "
           "ORDER BY bm25(cache_fts) LIMIT ?")
    with connect(app) as conn:
        for any_word in (False, True):
            match = fts_query(query, any_word)
            rows = conn.execute(sql, (match, limit)).fetchall() if match else []
            if rows:
                break
    return [{"url": u, "kind": k, "title": t, "snippet": s, "score": round(-b, 3)} for u, k, t, s, b in rows]


def archive_path(app: Any, vid: str) -> Path:
    return demo_dir(app) / "archive" / "youtube" / f"{vid}.json"


def archive_get(app: Any, vid: str) -> dict | None:
    path = archive_path(app, vid)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def archive_write(app: Any, vid: str, record: dict) -> Path:
    """Write atomically (temp file + rename): a reader never sees half a record."""
    path = archive_path(app, vid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path
