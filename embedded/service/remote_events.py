"""RemoteEvents: the event store's reads over the API (filled in by the tasks resource)."""

from __future__ import annotations

from typing import Any

from stalk.embedded.service.client import StackClient
from stalk.embedded.service.feed import ChangeFeed


class RemoteEvents:
    def __init__(self, client: StackClient, feed: ChangeFeed) -> None:
        self.client = client
        self.feed = feed

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"RemoteEvents.{name}")
