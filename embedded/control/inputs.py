"""The single values control actions take, checked one way for the panel's forms and the CLI: rates,
time limits, pool sizes, timeouts, task ids, signals, queue/worker/task names.

Pure: each returns the clean value or raises BadInput (one line naming the value, nothing sent). The
checks that need the cluster's answer (is the task registered, does the worker answer, does the queue
exist) take that answer as an argument; Control asks for it."""

from __future__ import annotations

import difflib
import math
import re
import signal as signals
from collections.abc import Iterable
from typing import Any

from stalk.embedded.control.problems import BadInput
from stalk.embedded.control.validation import TASK_ID_RE

#: A Celery rate limit as the panel's form takes it: N (per second), N/s, N/m or N/h; 0 removes it.
RATE_RE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def shown(value: Any, width: int = 60) -> str:
    """`value` as a message quotes it (between quotes of the message's own): printable, control characters
    escaped, cut at `width`."""
    text = value if isinstance(value, str) else repr(value)
    text = repr(text)[1:-1] if _UNPRINTABLE.search(text) else text
    return text if len(text) <= width else text[: width - 1] + "…"


def check_name(label: str, value: Any) -> str:
    """A queue, worker or task name: text, not empty, no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{label}: a name is required")
    if _UNPRINTABLE.search(value):
        raise BadInput(f"{label} '{shown(value)}': a name has no control characters")
    return value.strip()


def check_rate(value: Any) -> str:
    """A rate limit (spaces ignored): "10/m", "2/s", "100" (per second); "0" removes the limit."""
    rate = ("" if value is None else str(value)).replace(" ", "")
    if not RATE_RE.match(rate):
        raise BadInput(f"rate: {shown(rate) or 'empty'} is not a rate (N, N/s, N/m or N/h; 0 removes the limit)")
    return rate


def check_seconds(label: str, value: Any, *, allow_zero: bool = True) -> float:
    """A finite number of seconds (a number or its text): >= 0, or > 0 without `allow_zero`."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise BadInput(f"{label}: a number of seconds is required")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise BadInput(f"{label}: expected a number of seconds, got '{shown(value)}'") from None
    if not math.isfinite(number):
        raise BadInput(f"{label}: expected a finite number of seconds, got {shown(value)}")
    if number < 0 or (number == 0 and not allow_zero):
        raise BadInput(f"{label}: must be {'0 or more' if allow_zero else 'above 0'} seconds, got {number:g}")
    return number


def check_time_limits(soft: Any, hard: Any) -> tuple[float | None, float | None]:
    """(soft, hard) seconds for Celery's time_limit command, which sets both: one left out (None) or 0
    removes that limit (the worker's own default applies). Giving neither is a mistake, not a request."""
    if soft is None and hard is None:
        raise BadInput("time limit: give --soft, --hard or both (seconds; 0 removes a limit)")
    soft_s = None if soft is None else check_seconds("soft", soft) or None
    hard_s = None if hard is None else check_seconds("hard", hard) or None
    if soft_s is not None and hard_s is not None and soft_s > hard_s:
        raise BadInput(f"soft limit ({soft_s:g} s) is above the hard limit ({hard_s:g} s): the hard limit "
                       "would kill the task before the soft one warns it")
    return soft_s, hard_s


def check_count(label: str, value: Any, minimum: int = 1) -> int:
    """A whole number >= `minimum` (a number or its digits)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"{label}: expected a whole number >= {minimum}, got {shown(value)}")
    return value


def check_task_id(value: Any) -> str:
    """Something that can be a task id: Celery's are uuids, but `--task-id` may set any 1-255
    characters without spaces or control characters (validation.TASK_ID_RE, the submit form's rule)."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not TASK_ID_RE.fullmatch(text):
        raise BadInput(f"task id '{shown(value)}': not a task id (1-255 characters, no spaces or control "
                       "characters)")
    return text


def signal_name(value: str | int) -> str:
    """"TERM", "sigkill", 9 -> "SIGTERM", "SIGKILL"; BadInput for anything else."""
    text = str(value).strip().upper()
    if text.isdigit():
        try:
            return signals.Signals(int(text)).name
        except ValueError:
            pass
    elif not text.startswith("SIG"):
        text = "SIG" + text
    if text in signals.Signals.__members__:
        return text
    raise BadInput(f"signal '{shown(value)}': not a signal name (e.g. SIGTERM, SIGKILL, SIGINT)")


def check_registered(name: str, known: Iterable[str] | None) -> str:
    """`name` when some worker registers it (or nobody could tell: `known` None), else BadInput."""
    name = check_name("task", name)
    names = sorted(known) if known is not None else None
    if names is not None and name not in names:
        raise BadInput(f"task '{shown(name)}': not registered on any worker{_did_you_mean(name, names)}")
    return name


def check_worker(name: str, answering: Iterable[str]) -> str:
    """`name` when it is among the workers that answer, else BadInput naming those that do."""
    hosts = sorted(answering)
    if name not in hosts:
        listed = ", ".join(hosts) or "none"
        raise BadInput(f"worker '{shown(name)}': no worker by that name answers (workers that answer: "
                       f"{listed}){_did_you_mean(name, hosts)}")
    return name


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    if not close:  # a worker's short name: "default" for "default@host"
        close = [n for n in names if n.split("@", 1)[0] == name][:1]
    return f"; did you mean {close[0]}?" if close else ""
