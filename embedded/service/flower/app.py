"""The Flower-compatible application: its guard in front, Flower's routes, errors as Flower's text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from stalk.embedded.service.flower import errors, tasks, workers
from stalk.embedded.service.flower.fast import FastSends, Publisher
from stalk.embedded.service.flower.guard import FlowerGuard
from stalk.embedded.service.metrics import metrics_endpoint
from stalk.embedded.service.responses import JSONResponse

if TYPE_CHECKING:
    from stalk.embedded.config import FlowerConfig
    from stalk.embedded.service.guard import Receive, Scope, Send
    from stalk.embedded.stack import Stack


class FlowerApp:
    """What the Flower port serves: FlowerGuard in front of everything, then Flower's send routes answered
    at once (fast.py), then FastAPI with the other routes. The guard and the send routes sit outside
    FastAPI: its own layers (error and body-limit middleware, telemetry) cost a send more than they give."""

    def __init__(self, routes: FastAPI, config: FlowerConfig) -> None:
        self.routes = routes
        self.state = routes.state
        self.asgi = FlowerGuard(FastSends(routes), config=config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)


def build_flower_app(stack: Stack, config: FlowerConfig) -> FlowerApp:
    app = FastAPI(title="Stalk: Flower-compatible API", default_response_class=JSONResponse, openapi_url=None, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None)
    errors.install(app)
    app.include_router(tasks.router)
    app.include_router(workers.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)  # Flower's Prometheus path
    app.state.stack = stack
    app.state.worker_cache = workers.WorkerCache()
    app.state.limiters = {}
    app.state.submit_contexts = tasks.Contexts()
    app.state.publisher = Publisher()
    return FlowerApp(app, config)
