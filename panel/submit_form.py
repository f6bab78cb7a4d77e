"""Pure helpers for Submit: the form as a request, syntax problems, registered tasks, and task reprs turned
back into JSON for re-submit (signatures: stalk.embedded.service.describe_task)."""

from __future__ import annotations

import json
from typing import Any

from stalk.embedded.control import Problem, SubmitContext, validate
from stalk.panel.formatting import literal, preview

NUMBER_FIELDS = ("priority", "countdown", "eta", "expires")  # the form's one-line option inputs


def request_of(name: str | None, args: str, kwargs: str, queue: str | None,
               values: dict[str, str]) -> dict[str, Any]:
    """The form as a SubmitRequest dict: texts as typed (the control API parses them), blanks left out."""
    request: dict[str, Any] = {"name": name, "args": args, "kwargs": kwargs}
    if queue:
        request["queue"] = queue
    request.update({k: v.strip() for k, v in values.items() if v and v.strip()})
    return request


def local_problems(request: dict[str, Any]) -> list[Problem]:
    """The errors the control API would find without asking the cluster (JSON at line/column, numbers,
    times), from the same validation code, so messages match. Never raises."""
    problems, _checked = validate({**request, "name": request.get("name") or "?"}, SubmitContext())
    return [p for p in problems if p.severity == "error" and p.field != "name"]


def registered_tasks(app: Any) -> list[str]:
    if app is None:
        return []
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def _truncated(value: Any) -> bool:
    """Celery cuts long reprs: strings end with "..." and containers hold an Ellipsis."""
    if value is Ellipsis:
        return True
    if isinstance(value, str):
        return value.endswith("...")
    if isinstance(value, dict):
        return any(_truncated(k) or _truncated(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_truncated(v) for v in value)
    return False


def json_from_repr(label: str, text: str | None, kind: type) -> tuple[str, str | None]:
    """A task's args/kwargs display repr back into JSON text for the Submit form.

    (json_text, None) when the repr is a JSON-able literal; (the repr as it is, why) otherwise, so the
    user sees the original and the form's validation keeps it from being sent until it is fixed."""
    empty = "[]" if kind is list else "{}"
    if text is None or not text.strip():
        return empty, None
    ok, value = literal(text)
    if not ok:
        return text, f"{label}: the recorded repr {preview(text, 40)} is not a Python literal; edit it into JSON"
    if _truncated(value):
        return text, f"{label}: the recorded repr looks truncated ('...'); complete it before sending"
    if kind is list and isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, kind):
        return text, f"{label}: the recorded repr is not a {'list' if kind is list else 'dict'}"
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        # C1 controls and bidi overrides stay raw in JSON: then every non-ASCII character as its escape
        return (text if text.isprintable() else json.dumps(value, allow_nan=False)), None
    except (TypeError, ValueError, RecursionError) as exc:
        return text, f"{label}: the recorded value is not JSON ({exc}); edit it before sending"
