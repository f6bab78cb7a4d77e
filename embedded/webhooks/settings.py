"""`[[webhooks]]` in stalk.toml, validated into WebhookConfig (config.py calls `parse_webhooks`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from stalk.embedded.config import ConfigError, WebhookConfig
from stalk.embedded.events.states import ALL_STATES

KNOWN = {"url", "tasks", "states", "secret", "timeout", "backoff_max"}


def parse_webhooks(source: str, raw: Any) -> tuple[WebhookConfig, ...]:
    if not isinstance(raw, list):
        raise _fail(source, "webhooks", raw, "expected a list of [[webhooks]] tables")
    hooks = tuple(_parse_one(source, f"webhooks[{i}]", item) for i, item in enumerate(raw))
    urls = [h.url for h in hooks]
    duplicate = next((u for u in urls if urls.count(u) > 1), None)
    if duplicate:
        raise _fail(source, "webhooks.url", duplicate, "each webhook URL once (list its tasks and states together)")
    return hooks


def _fail(source: str, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: {key} = {value!r}: {allowed}")


def _parse_one(source: str, where: str, raw: Any) -> WebhookConfig:
    if not isinstance(raw, Mapping):
        raise _fail(source, where, raw, "expected a table with at least url")
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise ConfigError(f"{source}: unknown key {where}.{unknown[0]}: expected one of {', '.join(sorted(KNOWN))}")
    changes: dict[str, Any] = {"url": _url(source, f"{where}.url", raw.get("url"))}
    if "tasks" in raw:
        changes["tasks"] = _names(source, f"{where}.tasks", raw["tasks"])
    if "states" in raw:
        states = tuple(s.upper() for s in _names(source, f"{where}.states", raw["states"]))
        bad = next((s for s in states if s not in ALL_STATES), None)
        if bad is not None:
            raise _fail(source, f"{where}.states", bad, "expected states among " + ", ".join(ALL_STATES))
        changes["states"] = states
    if "secret" in raw:
        secret = raw["secret"]
        if not isinstance(secret, str) or not secret:
            raise _fail(source, f"{where}.secret", "…", "expected a non-empty string")
        changes["secret"] = secret
    for key, high in (("timeout", 300.0), ("backoff_max", 86400.0)):
        if key in raw:
            changes[key] = _seconds(source, f"{where}.{key}", raw[key], high)
    return WebhookConfig(**changes)


def _url(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, key, value, "expected an http:// or https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(source, key, value, "expected an http:// or https:// URL with a host")
    return value


def _names(source: str, key: str, value: Any) -> tuple[str, ...]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise _fail(source, key, value, "expected a non-empty list of non-empty strings")
    return tuple(v.strip() for v in items)


def _seconds(source: str, key: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= high:
        raise _fail(source, key, value, f"expected a number of seconds above 0 and at most {high:g}")
    return float(value)
