"""Pure helpers for Submit: JSON with line/column errors, registered tasks, signatures."""

from __future__ import annotations

import inspect
import json
from typing import Any


def parse_json(label: str, text: str, kind: type) -> tuple[Any, str | None]:
    """(value, None) or (None, "args: line 1, column 5: Expecting ',' delimiter")."""
    try:
        value = json.loads(text or ("[]" if kind is list else "{}"))
    except json.JSONDecodeError as exc:
        return None, f"{label}: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if not isinstance(value, kind):
        return None, f"{label}: expected a JSON {'list' if kind is list else 'object'}"
    return value, None


def registered_tasks(app: Any) -> list[str]:
    if app is None:
        return []
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def describe_task(app: Any, name: str) -> tuple[str, str]:
    """(signature, docstring) of a registered task."""
    task = app.tasks.get(name) if app is not None else None
    if task is None:
        return "", ""
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return f"{name}(...)", inspect.getdoc(task) or ""
    if getattr(task, "bind", False) or (params and params[0].name == "self"):
        params = params[1:] if params and params[0].name == "self" else params
    signature = f"{name}({', '.join(str(p) for p in params)})"
    return signature, inspect.getdoc(task.run) or ""


def number(text: str, label: str, integer: bool = False) -> tuple[float | int | None, str | None]:
    text = text.strip()
    if not text:
        return None, None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        return None, f"{label}: expected {'a whole number' if integer else 'a number'}, got {text!r}"
    if value < 0:
        return None, f"{label}: must not be negative"
    return value, None
