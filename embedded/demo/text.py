"""Tiny, deterministic "analysis" for the demo: a summary, keywords and a word count (no model, no network)."""

from __future__ import annotations

import re
from collections import Counter

_STOPWORD_TEXT = """a about after all also an and any are as at be because been before but by can do does each
every for from gives has have how if in into is it its keep more most never no not of on one or our so than that the
their them then there these they this to up was we what when where which while who why will with without you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z0-9'-]+", text.lower())


def keywords(text: str, k: int = 5) -> list[str]:
    counts = Counter(w for w in words(text) if w not in STOPWORDS and len(w) > 3)
    return [w for w, _ in counts.most_common(k)]


def summary(text: str, sentences: int = 2) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(parts[:sentences])


def analyze(text: str) -> dict:
    return {"summary": summary(text), "keywords": keywords(text), "words": len(words(text))}
