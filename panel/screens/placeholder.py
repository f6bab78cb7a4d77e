"""A mode whose screen has not landed yet says so (instead of failing to start)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ..actions import bindings
from .base import StalkScreen


def placeholder(scope: str) -> type[StalkScreen]:
    class Pending(StalkScreen):
        SCOPE = scope
        BINDINGS = bindings(scope)

        def compose_body(self) -> ComposeResult:
            yield Static(f"[$foreground-muted]The {scope} screen is not built yet.[/]", classes="section-title")

    Pending.__name__ = f"{scope.title()}Screen"
    return Pending
