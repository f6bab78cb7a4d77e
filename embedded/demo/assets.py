"""The demo's fixture content: assets/demo/*.json, package data `stalk.embedded.demo.fixtures`."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlparse

FIXTURES = "stalk.embedded.demo.fixtures"  # assets/demo/ in the repo (setup.py maps it)
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{6,20}$")


@cache
def fixture(name: str) -> Any:
    """One parsed fixture file, e.g. fixture("youtube") -> assets/demo/youtube.json."""
    return json.loads((files(FIXTURES) / f"{name}.json").read_text(encoding="utf-8"))


def video_id(url: str) -> str | None:
    """The video id of a youtube.com/watch?v=, youtu.be/ or /shorts/ URL, else None."""
    parsed = urlparse(url.strip())
    host = (parsed.hostname or "").removeprefix("www.").removeprefix("m.")
    candidate = None
    if host == "youtu.be":
        candidate = parsed.path.strip("/").split("/")[0]
    elif host.endswith("youtube.com"):
        if parsed.path.startswith(("/shorts/", "/embed/")):
            candidate = parsed.path.split("/")[2]
        else:
            values = parse_qs(parsed.query).get("v")
            candidate = values[0] if values else None
    return candidate if candidate and _YOUTUBE_ID.match(candidate) else None


def canonical_video_url(vid: str) -> str:
    return f"https://www.youtube.com/watch?v={vid}"


def video(vid: str) -> dict[str, Any]:
    """The fixture video, or a deterministic made-up one for an unknown id (the demo never goes online)."""
    for item in fixture("youtube")["videos"]:
        if item["video_id"] == vid:
            return dict(item)
    words = _vocabulary()
    n = _stable_int(vid)
    pick = [words[(n >> (3 * i)) % len(words)] for i in range(12)]
    return {
        "video_id": vid, "title": f"{pick[0].title()} and {pick[1]}: notes on {pick[2]}",
        "channel": "Demo Channel", "published": "2025-01-01", "duration_seconds": 120 + n % 1800,
        "views": n % 100_000, "tags": pick[3:6], "description": f"A video about {pick[0]} and {pick[1]}.",
        "transcript": " ".join(f"We talk about {a} and {b}." for a, b in zip(pick[::2], pick[1::2], strict=True)),
    }


def page(url: str) -> dict[str, Any]:
    """The fixture page (webpage or PDF), or a deterministic made-up one for an unknown URL."""
    for item in fixture("webpages")["pages"]:
        if item["url"] == url:
            return dict(item)
    parsed = urlparse(url)
    slug = parsed.path.rstrip("/").rsplit("/", 1)[-1] or parsed.hostname or "page"
    words = _vocabulary()
    n = _stable_int(url)
    pick = [words[(n >> (3 * i)) % len(words)] for i in range(8)]
    return {"url": url, "title": slug.replace("-", " ").replace("_", " ").title(), "site": parsed.hostname or "",
            "text": " ".join(f"This page covers {a} and {b}." for a, b in zip(pick[::2], pick[1::2], strict=True))}


def plugins() -> list[dict[str, Any]]:
    return list(fixture("plugins")["plugins"])


def plugin(name: str) -> dict[str, Any] | None:
    return next((p for p in plugins() if p["name"] == name), None)


@cache
def _vocabulary() -> list[str]:
    text = " ".join(v["transcript"] for v in fixture("youtube")["videos"]).lower()
    return sorted({w for w in re.findall(r"[a-z]{5,}", text)})


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
