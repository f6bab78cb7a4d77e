"""Prometheus metrics of one stack: Flower's (flower.py) and Stalk's own (stalk_state.py), in a registry
of the stack's own (tests run many stacks in one process).

    metrics = StackMetrics(stack).start()   # counts the store's events from now on
    body, content_type = metrics.exposition(accept_header)

The stack's API server keeps one per stack (ApiServer.metrics) and serves it at GET /api/v1/metrics
(routes/metrics.py). An app whose `state.stack` is the Stack (Flower's port) serves it with
`app.add_route("/metrics", metrics_endpoint, include_in_schema=False)`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from stalk.embedded.service.metrics.flower import FlowerCollector, FlowerCounts
from stalk.embedded.service.metrics.stalk_state import StalkCollector
from stalk.embedded.service.responses import JSONResponse

if TYPE_CHECKING:
    from stalk.embedded.stack import Stack

__all__ = ["StackMetrics", "metrics_endpoint"]


class StackMetrics:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.registry = CollectorRegistry(auto_describe=False)
        self.counts = FlowerCounts()
        self.stalk = StalkCollector(stack)
        self.registry.register(FlowerCollector(self.counts, stack))
        self.registry.register(self.stalk)
        self._untap: Callable[[], None] | None = None

    def start(self) -> StackMetrics:
        if self.stack.events is not None:
            self._untap = self.stack.events.tap(self.counts.tap)
        return self

    def stop(self) -> None:
        if self._untap is not None:
            with contextlib.suppress(Exception):
                self._untap()
            self._untap = None
        self.stalk.close()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics in the text format `accept` asks for (Prometheus' or OpenMetrics); blocking: up to
        the broker's short timeout (call it from a thread, not an event loop)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    async def endpoint(self, request: Request) -> Response:
        """A Starlette endpoint serving the metrics (built on a thread: the loop is never held)."""
        body, content_type = await asyncio.to_thread(self.exposition, request.headers.get("accept"))
        return Response(body, media_type=content_type)


def metrics_of(stack: Stack) -> StackMetrics | None:
    api = getattr(stack, "api", None)
    return getattr(api, "metrics", None)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics of an app whose `state.stack` is the Stack (looked up per request: the server that
    holds the metrics is set on the stack only once it serves)."""
    metrics = metrics_of(request.app.state.stack)
    if metrics is None:
        return JSONResponse({"error": "the stack's metrics are not ready yet: try again in a moment"}, 503)
    return await metrics.endpoint(request)
