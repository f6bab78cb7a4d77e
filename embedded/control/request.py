"""SubmitRequest: what to send, as the panel's form and the CLI give it (JSON text or values)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from stalk.embedded.control.problems import SubmitError, error


@dataclass
class SubmitRequest:
    """A task to send by name. `args`/`kwargs` may be JSON text; numbers may be text too."""

    name: Any
    args: Any = None  # list or JSON text
    kwargs: Any = None  # dict or JSON text
    queue: Any = None
    priority: Any = None  # 0-9
    countdown: Any = None  # seconds
    eta: Any = None  # datetime or ISO 8601 text
    expires: Any = None  # seconds or datetime / ISO text
    retry: Any = None  # bool: retry publishing when the broker is unreachable
    retry_policy: Any = None  # dict or JSON text: max_retries, interval_start, interval_step, interval_max
    task_id: Any = None

    @classmethod
    def of(cls, data: SubmitRequest | dict[str, Any]) -> SubmitRequest:
        """A request from a dict with the same keys (the panel's form); unknown keys -> SubmitError."""
        if isinstance(data, SubmitRequest):
            return data
        if not isinstance(data, dict):
            raise SubmitError([error(None, f"request: expected a dict of fields, got {type(data).__name__}")])
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise SubmitError([error(None, f"request: unknown field(s) {', '.join(unknown)}; "
                                           f"known: {', '.join(sorted(known))}")])
        return cls(**{"name": None, **data})  # a missing name is reported by validation


@dataclass(frozen=True)
class Checked:
    """A request that passed validation, in the shape `send_task`/`apply_async` take."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]  # queue, priority, countdown, eta, expires, retry, retry_policy, task_id


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
