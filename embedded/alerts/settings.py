"""`[[alerts]]` in stalk.toml, validated into AlertConfig (config.py calls `parse_alerts`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from stalk.embedded.config import AlertConfig, ConfigError

COMMON = {"name", "kind", "url", "format", "secret", "timeout", "backoff_max"}
FORMATS = ("json", "slack")
MAX_MINUTES = 7 * 24 * 60.0  # a week


@dataclass(frozen=True)
class Kind:
    """The keys of one kind of rule."""

    subject: str  # the key naming what is watched
    subject_default: str | None  # None: required (quota: the stack's only quota)
    threshold: str | None  # the key of the threshold (None: worker_offline, whose threshold is `minutes`)
    minutes_default: float | None  # None: required
    subject_required: bool = False
    has_minutes: bool = True


KINDS: dict[str, Kind] = {
    "task_failures": Kind("task", "*", "count", None),
    "queue_depth": Kind("queue", None, "depth", None, subject_required=True),
    "worker_offline": Kind("worker", "*", None, 1.0),
    "quota": Kind("quota", None, "percent", 0.0, has_minutes=False),
}


def parse_alerts(source: str, raw: Any) -> tuple[AlertConfig, ...]:
    if not isinstance(raw, list):
        raise _fail(source, "alerts", raw, "expected a list of [[alerts]] tables")
    rules = [_parse_one(source, f"alerts[{i}]", item) for i, item in enumerate(raw)]
    named = [r.name for r, explicit in rules if explicit]
    duplicate = next((n for n in named if named.count(n) > 1), None)
    if duplicate:
        raise _fail(source, "alerts.name", duplicate, "each alert name once")
    taken = set(named)
    out = []
    for rule, explicit in rules:
        if not explicit:  # a derived name: made unique
            base, n = rule.name, 2
            while rule.name in taken:
                rule = replace(rule, name=f"{base}#{n}")
                n += 1
        taken.add(rule.name)
        out.append(rule)
    return tuple(out)


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {value!r}: {allowed}")


def _parse_one(source: str, where: str, raw: Any) -> tuple[AlertConfig, bool]:
    if not isinstance(raw, Mapping):
        raise _fail(source, where, raw, "expected a table with at least kind")
    kind_name = raw.get("kind")
    if kind_name not in KINDS:
        raise _fail(source, f"{where}.kind", kind_name, "expected one of " + ", ".join(KINDS))
    kind = KINDS[kind_name]
    known = COMMON | {kind.subject} | ({"minutes"} if kind.has_minutes else set()) | ({kind.threshold} if kind.threshold else set())
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {where}.{unknown[0]} for kind = {kind_name!r}: expected one of "
                          f"{', '.join(sorted(known))}")
    subject = _subject(source, where, kind, raw)
    minutes = _minutes(source, f"{where}.minutes", raw.get("minutes", kind.minutes_default),
                       positive=kind_name == "task_failures")
    threshold = minutes if kind.threshold is None else _threshold(source, where, kind_name, kind.threshold, raw)
    explicit = "name" in raw
    name = _name(source, f"{where}.name", raw["name"]) if explicit else f"{kind_name}:{subject or 'default'}"
    changes: dict[str, Any] = {"name": name, "kind": kind_name, "subject": subject, "threshold": threshold,
                               "minutes": minutes}
    if "url" in raw:
        changes["urls"] = _urls(source, f"{where}.url", raw["url"])
    if "format" in raw:
        if raw["format"] not in FORMATS:
            raise _fail(source, f"{where}.format", raw["format"], "expected one of " + ", ".join(FORMATS))
        changes["format"] = raw["format"]
    if "secret" in raw:
        secret = raw["secret"]
        if not isinstance(secret, str) or not secret:
            raise _fail(source, f"{where}.secret", "…", "expected a non-empty string")
        changes["secret"] = secret
    for key, high in (("timeout", 300.0), ("backoff_max", 86400.0)):
        if key in raw:
            changes[key] = _seconds(source, f"{where}.{key}", raw[key], high)
    return AlertConfig(**changes), explicit


def _subject(source: str, where: str, kind: Kind, raw: Mapping[str, Any]) -> str | None:
    key = f"{where}.{kind.subject}"
    if kind.subject not in raw:
        if kind.subject_required:
            raise ConfigError(f"{source}: {key} is missing: expected a {kind.subject} name or glob")
        return kind.subject_default
    value = raw[kind.subject]
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise _fail(source, key, value, f"expected a non-empty {kind.subject} name"
                    + ("" if kind.subject == "quota" else " or glob (e.g. \"app.*\")"))
    return value.strip()


def _threshold(source: str, where: str, kind: str, key: str, raw: Mapping[str, Any]) -> float:
    full = f"{where}.{key}"
    if key not in raw:
        raise ConfigError(f"{source}: {full} is missing: a {kind} alert needs {key}")
    value = raw[key]
    if key == "percent":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not 0 < value <= 100:
            raise _fail(source, full, value, "expected a number above 0 and at most 100")
        return float(value)
    low = 1 if key == "count" else 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10**9:
        raise _fail(source, full, value, f"expected a whole number of at least {low}")
    return float(value)


def _minutes(source: str, key: str, value: Any, positive: bool) -> float:
    if value is None:
        raise ConfigError(f"{source}: {key} is missing: expected a number of minutes (fractions allowed)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0) or value > MAX_MINUTES:
        low = "above 0" if positive else "of at least 0"
        raise _fail(source, key, value, f"expected a number of minutes {low} and at most {MAX_MINUTES:g}")
    return float(value)


def _name(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable() or len(value) > 100:
        raise _fail(source, key, value, "expected a non-empty printable name of at most 100 characters")
    return value.strip()


def _urls(source: str, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(source, key, value, "expected an http(s) URL or a non-empty list of them")
    for item in items:
        parts = urlsplit(item) if isinstance(item, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(source, key, item, "expected an http:// or https:// URL with a host")
    if len(set(items)) != len(items):
        raise _fail(source, key, value, "each URL once")
    return tuple(items)


def _seconds(source: str, key: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= high:
        raise _fail(source, key, value, f"expected a number of seconds above 0 and at most {high:g}")
    return float(value)
