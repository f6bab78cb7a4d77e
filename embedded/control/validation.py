"""Submit validation with no I/O: every check a request must pass before anything is sent.

The context (known tasks, consumed queues, visibility timeout, revoked ids) is gathered by the
caller, so this module is testable without a broker and never raises on any input."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stalk.embedded.control.problems import Problem, error, warning
from stalk.embedded.control.request import Checked, SubmitRequest

PRIORITY_RANGE = (0, 9)
ZONE_MARGIN = timedelta(days=1)  # no time zone is further than this from UTC
RETRY_POLICY_KEYS = {"max_retries", "interval_start", "interval_step", "interval_max"}
TASK_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")


@dataclass(frozen=True)
class SubmitContext:
    """What the cluster looks like. None means "unknown" (no worker answered, nothing declared)."""

    tasks: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    visibility_timeout: int | None = None  # Redis brokers only: a longer delay is delivered twice
    revoked: frozenset[str] = frozenset()
    route: Callable[[str], str | None] | None = None  # task name -> the queue it is routed to
    # task name -> a callable that raises TypeError when the arguments do not fit (Celery's __header__)
    arguments: Callable[[str], Callable[..., Any] | None] | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def validate(request: Any, ctx: SubmitContext) -> tuple[list[Problem], Checked | None]:
    """(problems, checked); checked is None when any problem is an error."""
    try:
        req = SubmitRequest.of(request)
    except ValueError as exc:
        return list(getattr(exc, "problems", [error(None, f"request: {exc}")])), None
    try:
        return _validate(req, ctx)
    except Exception as exc:  # a bug here must not become a traceback in the panel or CLI
        return [error(None, f"request: cannot validate: {type(exc).__name__}: {exc}")], None


def _validate(req: SubmitRequest, ctx: SubmitContext) -> tuple[list[Problem], Checked | None]:
    problems: list[Problem] = []
    name = _name(req.name, ctx, problems)
    args = _json_value("args", req.args, list, problems)
    kwargs = _json_value("kwargs", req.kwargs, dict, problems)
    if name and isinstance(args, list) and isinstance(kwargs, dict):
        _arguments(name, args, kwargs, ctx, problems)
    options: dict[str, Any] = {}
    queue = _queue(req.queue, name, ctx, problems)
    if queue:
        options["queue"] = queue
    priority = _number("priority", req.priority, problems, integer=True)
    if priority is not None:
        if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
            problems.append(error("priority", f"priority: must be 0-9, got {priority}"))
        else:
            options["priority"] = priority
    delay = _schedule(req, ctx, options, problems)
    _expires(req.expires, delay, ctx, options, problems)
    _retry(req, options, problems)
    _task_id(req.task_id, ctx, options, problems)
    if any(p.severity == "error" for p in problems):
        return problems, None
    return problems, Checked(name or "", args or [], kwargs or {}, options)


def _name(value: Any, ctx: SubmitContext, problems: list[Problem]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(error("name", "task: a task name is required (text, e.g. proj.tasks.add)"))
        return None
    name = value.strip()
    if ctx.tasks is None:
        problems.append(warning("name", f"task {name!r}: cannot check it is registered "
                                        "(no worker answered and the app registers no tasks)"))
    elif name not in ctx.tasks:
        close = difflib.get_close_matches(name, sorted(ctx.tasks), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(error("name", f"task {name!r}: not registered on any worker{hint}"))
    return name


def _arguments(name: str, args: list, kwargs: dict, ctx: SubmitContext, problems: list[Problem]) -> None:
    """Arguments that do not fit the task's signature fail here, not later on a worker."""
    check = ctx.arguments(name) if ctx.arguments is not None else None
    if check is None:
        if ctx.arguments is not None and (ctx.tasks is None or name in ctx.tasks):
            problems.append(warning("args", f"task {name!r}: arguments not checked (its code cannot be "
                                            "imported here, so its signature is unknown)"))
        return
    try:
        check(*args, **kwargs)
    except TypeError as exc:
        message = str(exc).removeprefix("__header__() ").removeprefix(f"{name}() ")
        problems.append(error("args", f"task {name!r}: {message}"))


def _json_value(label: str, value: Any, kind: type[list] | type[dict], problems: list[Problem]) -> Any:
    """A list/dict given as a value or JSON text; bad JSON names its line and column."""
    want = "list" if kind is list else "object"
    if value is None or (isinstance(value, str) and not value.strip()):
        return kind()
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(error(label, f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                                         f"{exc.msg}"))
            return None
        except RecursionError:
            problems.append(error(label, f"{label}: JSON nested too deeply"))
            return None
    elif isinstance(value, tuple) and kind is list:
        value = list(value)
    if not isinstance(value, kind):
        problems.append(error(label, f"{label}: expected a JSON {want}, got {_kind_of(value)}"))
        return None
    if kind is dict and not all(isinstance(k, str) for k in value):
        problems.append(error(label, f"{label}: keys must be text (argument names)"))
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        problems.append(error(label, f"{label}: cannot be sent as JSON: {exc}"))
        return None
    return value


def _kind_of(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _queue(value: Any, name: str | None, ctx: SubmitContext, problems: list[Problem]) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        problems.append(error("queue", "queue: expected a queue name (text)"))
        return None
    queue = value.strip() if value else None
    target = queue or (_routed(ctx, name) if name else None)
    if target and ctx.queues is not None and target not in ctx.queues:
        consumed = ", ".join(sorted(ctx.queues)) or "none"
        if queue:
            problems.append(error("queue", f"queue {target!r}: no worker consumes it (consumed: {consumed})"))
        else:
            problems.append(warning("queue", f"queue {target!r} (where {name} is routed): no worker consumes "
                                             f"it (consumed: {consumed})"))
    return queue


def _routed(ctx: SubmitContext, name: str) -> str | None:
    try:
        return ctx.route(name) if ctx.route else None
    except Exception:
        return None


def _number(label: str, value: Any, problems: list[Problem], integer: bool = False) -> Any:
    """None, or a finite non-negative number (text accepted); anything else is a problem."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    want = "a whole number" if integer else "a number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        problems.append(error(label, f"{label}: expected {want}, got {_kind_of(value)}"))
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip()) if not integer else _int_text(value.strip())
        except ValueError:
            problems.append(error(label, f"{label}: expected {want}, got {value.strip()[:40]!r}"))
            return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(error(label, f"{label}: expected {want}, got {value}"))
        return None
    if integer and isinstance(value, float):
        if not value.is_integer():
            problems.append(error(label, f"{label}: expected {want}, got {value}"))
            return None
        value = int(value)
    if value < 0:
        problems.append(error(label, f"{label}: must not be negative, got {value}"))
        return None
    return value


def _int_text(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _datetime(label: str, value: Any, problems: list[Problem]) -> datetime | None:
    """A datetime or ISO 8601 text; naive means UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            problems.append(error(label, f"{label}: expected an ISO 8601 time like 2030-01-31T09:00:00Z, "
                                         f"got {value.strip()[:40]!r}"))
            return None
    if not isinstance(value, datetime):
        problems.append(error(label, f"{label}: expected an ISO 8601 time, got {_kind_of(value)}"))
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:  # a worker converts it to its own zone (up to a day either way): year 1 or 9999 overflows there
        value.astimezone(UTC) - ZONE_MARGIN
        value.astimezone(UTC) + ZONE_MARGIN
    except OverflowError:
        problems.append(error(label, f"{label}: {value.isoformat()} is out of range (years 1-9999 in every "
                                     "time zone)"))
        return None
    return value


def _seconds_away(label: str, seconds: float, ctx: SubmitContext, problems: list[Problem]) -> bool:
    """`seconds` from now is a time Celery can compute (now + timedelta): else a problem, False."""
    try:
        ctx.now() + timedelta(seconds=seconds) + ZONE_MARGIN
    except OverflowError:
        problems.append(error(label, f"{label}: {seconds:g} s from now is past the year 9999"))
        return False
    return True


def _schedule(req: SubmitRequest, ctx: SubmitContext, options: dict[str, Any],
              problems: list[Problem]) -> float:
    """countdown or eta (not both); returns the delay in seconds. A delay past the Redis visibility
    timeout gets the message delivered again while it still waits (kombu#337)."""
    countdown = _number("countdown", req.countdown, problems)
    eta = _datetime("eta", req.eta, problems) if req.eta not in (None, "") else None
    if countdown is not None and eta is not None:
        problems.append(error("eta", "eta: give a countdown or an eta, not both"))
        return 0.0
    delay = 0.0
    if countdown is not None and not _seconds_away("countdown", countdown, ctx, problems):
        countdown = None
    if countdown is not None:
        options["countdown"] = countdown
        delay = float(countdown)
    elif eta is not None:
        options["eta"] = eta
        delay = max(0.0, (eta - ctx.now()).total_seconds())
    limit = ctx.visibility_timeout
    if limit and delay > limit:
        label = "countdown" if countdown is not None else "eta"
        problems.append(error(label, f"{label}: {delay:.0f} s away is longer than the broker's visibility "
                                     f"timeout ({limit} s): Redis would deliver it more than once "
                                     "(kombu#337); raise broker.visibility_timeout or schedule it later"))
    return delay


def _expires(value: Any, delay: float, ctx: SubmitContext, options: dict[str, Any],
             problems: list[Problem]) -> None:
    if value is None or value == "":
        return
    if isinstance(value, (datetime, str)) and not _numeric_text(value):
        when = _datetime("expires", value, problems)
        if when is None:
            return
        seconds = (when - ctx.now()).total_seconds()
        if seconds <= 0:
            problems.append(error("expires", f"expires: {when.isoformat()} is already past"))
            return
        options["expires"] = when
    else:
        seconds = _number("expires", value, problems)
        if seconds is None or not _seconds_away("expires", seconds, ctx, problems):
            return
        options["expires"] = seconds
    if delay and seconds <= delay:
        problems.append(error("expires", f"expires: it would expire ({seconds:.0f} s) before it runs "
                                         f"({delay:.0f} s)"))


def _numeric_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value.strip())
    except ValueError:
        return False
    return True


def _retry(req: SubmitRequest, options: dict[str, Any], problems: list[Problem]) -> None:
    if req.retry is not None:
        if not isinstance(req.retry, bool):
            problems.append(error("retry", f"retry: expected true or false, got {_kind_of(req.retry)}"))
        else:
            options["retry"] = req.retry
    if req.retry_policy is None or req.retry_policy == "":
        return
    policy = _json_value("retry_policy", req.retry_policy, dict, problems)
    if policy is None:
        return
    unknown = sorted(set(policy) - RETRY_POLICY_KEYS)
    if unknown:
        problems.append(error("retry_policy", f"retry_policy: unknown key(s) {', '.join(unknown)}; "
                                              f"known: {', '.join(sorted(RETRY_POLICY_KEYS))}"))
        return
    clean: dict[str, Any] = {}
    for key, raw in policy.items():
        if key == "max_retries" and raw is None:
            clean[key] = None
            continue
        before = len(problems)
        number = _number(f"retry_policy.{key}", raw, problems, integer=key == "max_retries")
        if len(problems) > before:
            problems[-1] = Problem(problems[-1].severity, problems[-1].message, "retry_policy")
        elif number is not None:
            clean[key] = number
    options["retry_policy"] = clean


def _task_id(value: Any, ctx: SubmitContext, options: dict[str, Any], problems: list[Problem]) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        problems.append(error("task_id", "task_id: expected 1-255 characters without spaces or control "
                                         "characters"))
        return
    if value in ctx.revoked:
        problems.append(warning("task_id", f"task_id {value}: is revoked in Stalk's revoke store; a worker "
                                           "would discard it"))
    options["task_id"] = value
