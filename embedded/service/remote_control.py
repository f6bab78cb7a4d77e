"""RemoteControl: what the panel and the CLI call on `stack.control`, as calls to a running stack's API,
with Control's return types (WorkerReport, Problem, BeatEntry, RevokeEntry, SubmitContext) and errors:
a refused submit is a SubmitError with its problems, a bad value or an unknown worker, queue or entry a
BadInput, anything else (broker unreachable, API gone) a ControlError.

The user's Celery app stays in the stack process: task names, signatures and routes come from it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from stalk.embedded.config import WorkerSpec
from stalk.embedded.control import (
    BadInput,
    BeatEntry,
    ControlError,
    Problem,
    RevokeEntry,
    SubmitContext,
    SubmitError,
    WorkerReport,
    check_name,
)
from stalk.embedded.control.inputs import check_worker
from stalk.embedded.service.client import ApiError, StackClient
from stalk.embedded.service.codec import decode
from stalk.embedded.service.task_types import TaskType

T = TypeVar("T")
REFUSED = (400, 404, 422)  # the request was wrong (a bad value, a name nobody knows): nothing was sent
WAIT_MARGIN = 10.0  # s the HTTP call waits beyond a `wait` for the outcome


@dataclass(frozen=True)
class Sent:
    """What went out: `id` (a task's, a chain's last step's, a group's), and with `wait` its outcome."""

    id: str
    name: str | None = None
    queue: str | None = None
    eta: datetime | None = None
    task_ids: tuple[str, ...] = ()
    outcome: dict[str, Any] | None = None  # {"state", "result", "error"}

    @property
    def results(self) -> list[Sent]:
        """A group's members (as GroupResult.results gives them: each with its `id`)."""
        return [Sent(t) for t in self.task_ids]


class RemoteControl:
    """`stack.control` of a RemoteStack (`stack`: its processes and mode)."""

    def __init__(self, client: StackClient, stack: Any) -> None:
        self.client = client
        self.stack = stack
        self.eager = getattr(stack, "mode", None) == "eager"

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ApiError as exc:
            raise _error(exc) from None

    def _get(self, path: str, **params: Any) -> Any:
        return self._call(lambda: self.client.get(path, **params))

    def _post(self, path: str, body: Any = None, timeout: float | None = None, **params: Any) -> Any:
        return self._call(lambda: self.client.request("POST", path, params=params,
                                                      body=body if body is not None else {}, timeout=timeout))

    @property
    def worker_specs(self) -> tuple[WorkerSpec, ...]:
        """The stack's supervised workers (name, queues), from its processes."""
        procs = self._call(self.stack.processes)
        return tuple(WorkerSpec(name=p.name, queues=tuple(p.queues)) for p in procs if p.role == "worker")

    # -- task types and submit ----------------------------------------------------------------------

    def task_types(self, refresh: bool = False) -> list[TaskType]:
        return decode(list[TaskType], self._get("/task-types", refresh=refresh or None))

    def registered_tasks(self, refresh: bool = False) -> set[str]:
        return {t.name for t in self.task_types(refresh)}

    def require_task(self, name: str) -> str:
        name = check_name("task", name)
        self._get(f"/task-types/{_part(name)}")
        return name

    def context(self) -> SubmitContext:
        """The submit context as data (no routing or signature checks here: validate_submit has them)."""
        data = self._get("/submit/context")
        return SubmitContext(tasks=_frozen(data["tasks"]), queues=_frozen(data["queues"]),
                             visibility_timeout=data["visibility_timeout"], revoked=frozenset(data["revoked"]))

    def validate_submit(self, request: Any) -> list[Problem]:
        """Every problem with `request`, nothing sent. Never raises."""
        try:
            return decode(list[Problem], self.client.post("/submit/validate", _plain(request)))
        except Exception as exc:
            return [Problem("error", f"request: cannot validate: {exc}", None)]

    def submit(self, request: Any, force: bool = False, wait: float | None = None) -> Sent:
        data = self._post("/submit", _plain(request), _timeout(wait), force=force or None, wait=wait)
        return Sent(data["task_id"], data["name"], data["queue"],
                    datetime.fromisoformat(data["eta"]) if data.get("eta") else None, (data["task_id"],),
                    data.get("outcome"))

    def chain(self, requests: Iterable[Any], force: bool = False, wait: float | None = None) -> Sent:
        return self._canvas("chain", requests, force, wait)

    def group(self, requests: Iterable[Any], force: bool = False, wait: float | None = None) -> Sent:
        return self._canvas("group", requests, force, wait)

    def _canvas(self, kind: str, requests: Iterable[Any], force: bool, wait: float | None) -> Sent:
        body = {"steps": [_plain(r) for r in requests], "force": force}
        data = self._post(f"/submit/{kind}", body, _timeout(wait), wait=wait)
        return Sent(data["id"], task_ids=tuple(data["task_ids"]), outcome=data.get("outcome"))

    def group_progress(self, group_id: str) -> tuple[int, int]:
        data = self._get(f"/groups/{_part(group_id)}/progress")
        return data["done"], data["total"]

    # -- revoke -------------------------------------------------------------------------------------

    def revoke(self, task_id: str, terminate: bool = False, signal: str = "SIGTERM") -> None:
        self._post(f"/tasks/{_part(task_id)}/revoke", {"terminate": terminate, "signal": signal})

    def revoke_many(self, task_ids: Iterable[str], terminate: bool = False, signal: str = "SIGTERM") -> None:
        self._post("/revoke", {"task_ids": list(task_ids), "terminate": terminate, "signal": signal, "force": True})

    def unknown_task_ids(self, task_ids: Iterable[str], timeout: float = 1.0) -> list[str]:
        return list(self._post("/revoke/unknown", {"task_ids": list(task_ids)}))

    def revoke_entries(self) -> list[RevokeEntry]:
        return decode(list[RevokeEntry], self._get("/revokes"))

    def revoked(self) -> list[str]:
        return [e.task_id for e in self.revoke_entries()]

    def revoke_entry(self, task_id: str) -> RevokeEntry | None:
        try:
            return decode(RevokeEntry, self.client.get(f"/revokes/{_part(task_id)}"))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise _error(exc) from None

    # -- workers ------------------------------------------------------------------------------------

    def inspect(self, kind: str, destination: str | list[str] | None = None, timeout: float = 1.0) -> dict:
        dest = [destination] if isinstance(destination, str) else destination
        return dict(self._call(lambda: self.client.request(
            "GET", f"/inspect/{_part(kind)}", params={"destination": dest or None, "timeout": timeout},
            timeout=timeout + WAIT_MARGIN)))

    def worker_report(self, hostname: str, timeout: float = 1.0) -> WorkerReport:
        data = self._call(lambda: self.client.request("GET", f"/workers/{_part(hostname)}",
                                                      params={"timeout": timeout}, timeout=timeout + WAIT_MARGIN))
        return decode(WorkerReport, data)

    def require_worker(self, hostname: str, timeout: float = 1.0) -> str:
        """`hostname` when that worker answers a ping; BadInput naming the workers that do otherwise."""
        host = check_name("worker", hostname)
        if self.eager or host in self.inspect("ping", [host], timeout):
            return host
        return check_worker(host, self.inspect("ping", None, timeout))

    def pool_grow(self, hostname: str, n: int = 1) -> list:
        return list(self._post(f"/workers/{_part(hostname)}/pool/grow", {"n": n}))

    def pool_shrink(self, hostname: str, n: int = 1) -> list:
        return list(self._post(f"/workers/{_part(hostname)}/pool/shrink", {"n": n}))

    def autoscale(self, hostname: str, max: int, min: int) -> list:  # noqa: A002 - the contract's names
        return list(self._post(f"/workers/{_part(hostname)}/autoscale", {"max": max, "min": min}))

    def shutdown(self, hostname: str) -> list:
        if not hostname:
            raise ControlError("shutdown: name the worker (hostname); refusing to stop every worker")
        return list(self._post(f"/workers/{_part(hostname)}/shutdown"))

    def rate_limit(self, task_name: str, rate: str | int | None, destination: str | None = None) -> list:
        name = check_name("task", task_name)
        return list(self._post(f"/task-types/{_part(name)}/rate-limit", {"rate": rate, "destination": destination}))

    def time_limit(self, task_name: str, soft: float | str | None = None, hard: float | str | None = None,
                   destination: str | None = None) -> list:
        name = check_name("task", task_name)
        body = {"soft": soft, "hard": hard, "destination": destination}
        return list(self._post(f"/task-types/{_part(name)}/time-limit", body))

    # -- queues and beat ----------------------------------------------------------------------------

    def known_queues(self) -> list[str]:
        return list(self._get("/queues"))

    def queue_depths(self) -> dict[str, int]:
        return dict(self._get("/queues/depths"))

    def purge(self, queue: str, by: str | None = None) -> int:
        queue = check_name("queue", queue)
        return int(self._post(f"/queues/{_part(queue)}/purge", {"by": by})["purged"])

    def beat_entries(self) -> list[BeatEntry]:
        return decode(list[BeatEntry], self._get("/beat/entries"))

    def run_beat_entry(self, name: str, wait: float | None = None) -> Sent:
        name = check_name("beat entry", name)
        data = self._post(f"/beat/entries/{_part(name)}/run", None, _timeout(wait), wait=wait)
        return Sent(data["task_id"], name, outcome=data.get("outcome"))

    def close(self) -> None:
        """The client belongs to the RemoteStack."""


def _error(exc: ApiError) -> Exception:
    """Control's own error for a refused or failed call."""
    body = exc.body if isinstance(exc.body, dict) else {}
    if exc.status == 400 and isinstance(body.get("problems"), list):
        return SubmitError(decode(list[Problem], body["problems"]))
    if exc.status in REFUSED:
        return BadInput(exc.message)
    return ControlError(exc.message)


def _part(name: str) -> str:
    """A name as one path segment (a task id or queue name may hold '/', '?' or '#')."""
    return quote(str(name), safe="@")


def _timeout(wait: float | None) -> float | None:
    return wait + WAIT_MARGIN if wait else None


def _frozen(names: list[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def _plain(request: Any) -> Any:
    """A SubmitRequest (or a dict) as JSON-ready data: datetimes as ISO text, which validation reads."""
    data = asdict(request) if is_dataclass(request) and not isinstance(request, type) else request
    if isinstance(data, dict):
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()
                if not (is_dataclass(request) and v is None)}
    return data
