"""Small, pure formatters shared by the screens (durations, sizes, ages, previews)."""

from __future__ import annotations

import ast
import json
import pprint
from datetime import datetime
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def uptime_text(seconds: float | None) -> str:
    """Whole seconds: uptimes tick once a second, sub-second noise helps nobody."""
    if seconds is None:
        return "-"
    whole = int(max(0.0, seconds))
    return f"{whole}s" if whole < 60 else duration(float(whole))


def size(n: int | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit in ("B", "K") else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}"


def clock_time(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def preview(value: Any, width: int = 40) -> str:
    """A one-line JSON preview of args/kwargs, cut to `width` characters."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def printable(text: str) -> str:
    """`text` with invisible characters (controls, odd spaces) shown as escapes, e.g. \\x0b."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    try:
        return json.dumps(value, indent=2, default=str, sort_keys=False)
    except (TypeError, ValueError):
        return repr(value)


MAX_LITERAL = 20_000  # longer reprs are shown as they are (literal_eval cost grows with size)


def literal(text: str | None) -> tuple[bool, Any]:
    """(True, value) when a Celery display repr ("(2, 3)", "{'a': 1}") is a Python literal."""
    if text is None or len(text) > MAX_LITERAL:
        return False, None
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def pretty_repr(text: str | None, width: int = 100) -> str:
    """A display repr laid out over lines: as JSON when it is JSON, else as Python, else as is."""
    if text is None:
        return "-"
    ok, value = literal(text)
    if not ok or not isinstance(value, list | tuple | dict | set):
        return text
    value = list(value) if isinstance(value, tuple) else value
    try:
        compact = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return pprint.pformat(value, width=width)
    return compact if len(compact) <= width else json.dumps(value, indent=2, ensure_ascii=False)


def sparkline(values: list[float], width: int) -> str:
    """Unicode bars for the last `width` values, scaled to their maximum."""
    values = list(values)[-width:]
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in values)


def bar(fraction: float, width: int) -> str:
    fraction = max(0.0, min(1.0, fraction))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)
