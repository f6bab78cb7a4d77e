"""The Flower-compatible application: its guard in front, Flower's routes, errors as Flower's text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from stalk.embedded.service.flower import errors, tasks, workers
from stalk.embedded.service.flower.guard import FlowerGuard
from stalk.embedded.service.metrics import metrics_endpoint
from stalk.embedded.service.responses import JSONResponse

if TYPE_CHECKING:
    from stalk.embedded.config import FlowerConfig
    from stalk.embedded.stack import Stack


def build_flower_app(stack: Stack, config: FlowerConfig) -> FastAPI:
    app = FastAPI(title="Stalk: Flower-compatible API", default_response_class=JSONResponse, openapi_url=None, docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None)
    errors.install(app)
    app.include_router(tasks.router)
    app.include_router(workers.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)  # Flower's Prometheus path
    app.add_middleware(FlowerGuard, config=config)
    app.state.stack = stack
    app.state.worker_cache = workers.WorkerCache()
    app.state.limiters = {}
    app.state.submit_contexts = tasks.Contexts()
    return app
