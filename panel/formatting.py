"""Small, pure formatters shared by the screens (durations, sizes, ages, previews, times).

Times: one rule for every time Stalk shows, on screen and in the CLI's text output. A time is the local
time of this machine, HH:MM:SS, with the date in front when it is not today (MM-DD, or YYYY-MM-DD when not
this year): `clock_time`. A time kept in another zone (an eta in the app's timezone, a crontab read in the
app's or its own zone, a beat run) is converted to local time first (`time_text`); the zone is named only
where something is defined in another zone (a crontab's schedule says `... PST`), never beside a time.
"Today" is the caller's `now` (the panel's clock), else the machine's. `--json` outputs stay ISO 8601 with
the offset.
"""

from __future__ import annotations

import ast
import json
import pprint
import time
from datetime import UTC, date, datetime
from typing import Any

from stalk.embedded import printable

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
    value: float = n
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit in ("B", "K") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value}"


def clock_time(ts: float | None, now: float | None = None) -> str:
    """Epoch seconds as local HH:MM:SS, the date in front when not on `now`'s day (see the module doc)."""
    if not ts:
        return "-"
    try:
        at = datetime.fromtimestamp(ts)
        today = date.fromtimestamp(time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return "-"
    if at.date() == today:
        return at.strftime("%H:%M:%S")
    return at.strftime("%m-%d %H:%M:%S" if at.year == today.year else "%Y-%m-%d %H:%M:%S")


def clock_width(stamps: Any, now: float) -> int:
    """Cells `clock_time` needs for the widest of `stamps` (epoch seconds or None): 8, 14 or 19. Float
    comparisons only: a table asks it for every row it shows."""
    day = date.fromtimestamp(now)
    midnight = datetime(day.year, day.month, day.day).timestamp()
    next_day = datetime.fromordinal(day.toordinal() + 1).timestamp()
    year, next_year = datetime(day.year, 1, 1).timestamp(), datetime(day.year + 1, 1, 1).timestamp()
    width = 8
    for ts in stamps:
        if ts and not midnight <= ts < next_day:
            if not year <= ts < next_year:
                return 19
            width = 14
    return width


def epoch_of(value: Any) -> float | None:
    """Epoch seconds of a time however it is kept: a number, a datetime or an ISO 8601 text (naive means
    UTC, as Celery reads an eta); None when it is none of those."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def time_text(value: Any, now: float | None = None) -> str:
    """`clock_time` of a time kept in any zone or form (see epoch_of); a text that is no time as it is."""
    ts = epoch_of(value)
    if ts is None:
        return "-" if value is None or value == "" else str(value)
    return clock_time(ts, now)


def preview(value: Any, width: int = 40) -> str:
    """A one-line JSON preview of args/kwargs, cut to `width` characters."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty_json(value: Any) -> str:
    return printable(_pretty_json(value), "\n")


def _pretty_json(value: Any) -> str:
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
    """A display repr laid out over lines: as JSON when it is JSON, else as Python, else as is. Printable:
    the strings read out of the repr hold what the repr escaped (ESC, C1 controls, bidi overrides)."""
    return printable(_pretty_repr(text, width), "\n")


def _pretty_repr(text: str | None, width: int) -> str:
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
