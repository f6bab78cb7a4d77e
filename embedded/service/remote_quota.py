"""RemoteQuota: the quota ledger's reads over the API (filled in by the quota resource)."""

from __future__ import annotations

from typing import Any

from stalk.embedded.service.client import StackClient


class RemoteQuota:
    def __init__(self, client: StackClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"RemoteQuota.{name}")
