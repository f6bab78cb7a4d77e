"""RemoteControl: control's calls over the API (filled in by the control resource)."""

from __future__ import annotations

from typing import Any

from stalk.embedded.service.client import StackClient


class RemoteControl:
    def __init__(self, client: StackClient, stack: Any) -> None:
        self.client = client
        self.stack = stack

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"RemoteControl.{name}")
