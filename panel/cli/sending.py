"""What the sending commands (submit, run-entry, chain, group) share when a stack runs: its API sends,
after the stack checked its broker (embedded/control/preflight.py: "broker ... unreachable" within seconds,
nothing sent, nothing later)."""

from __future__ import annotations

from typing import Any, Protocol

from stalk.embedded.service import StackClient
from stalk.panel.cli.base import fail
from stalk.panel.cli.cluster import run


class RemoteControl(Protocol):
    """The calls used here of a running stack's RemoteControl (embedded/service/remote_control.py)."""

    client: StackClient

    def _call(self, fn: Any) -> Any: ...
    def submit(self, request: Any, force: bool = False, wait: float | None = None) -> Any: ...
    def validate_submit(self, request: Any) -> list[Any]: ...
    def chain(self, requests: Any, force: bool = False, wait: float | None = None) -> Any: ...
    def group(self, requests: Any, force: bool = False, wait: float | None = None) -> Any: ...
    def run_beat_entry(self, name: str, wait: float | None = None) -> Any: ...


def remote(control: Any) -> RemoteControl | None:
    """`control` when it is a running stack's (a RemoteControl: its API), else None."""
    return control if isinstance(getattr(control, "client", None), StackClient) else None


def ensure_broker(control: RemoteControl) -> None:
    """One line and exit 1 unless the stack's broker answers now (checked by the stack, within seconds)."""
    run(lambda: control._call(lambda: control.client.get("/submit/broker")))


def api_wait(wait: bool, timeout: float) -> float | None:
    return timeout if wait else None


def remote_outcome(sent: Any, timeout: float) -> dict[str, Any]:
    """A stack's answer to a send with `wait`, as wait_outcome says it (no result in time: one line, exit 1)."""
    outcome = dict(sent.outcome or {})
    if outcome.get("state") == "TIMEOUT" or not outcome:
        fail(outcome.get("error") or f"sent {sent.id}, but no result within {timeout:g} s")
    if outcome.get("state") == "SUCCESS":
        return {"state": "SUCCESS", "result": outcome.get("result")}
    return {"state": outcome.get("state"), "error": outcome.get("error")}
