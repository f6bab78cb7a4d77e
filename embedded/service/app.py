"""The FastAPI application: the guard in front, the routes of each resource, errors as JSON."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI

from stalk.embedded.service import problems
from stalk.embedded.service.guard import Guard
from stalk.embedded.service.routes import ROUTERS

API_PREFIX = "/api/v1"


def build_app(token: str, hosts: Iterable[str] = ()) -> FastAPI:
    app = FastAPI(title="Stalk stack API", version="1", openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=f"{API_PREFIX}/docs", redoc_url=None,
                  description="One Celery stack (broker, workers, beat, events, control, quota) served by "
                              "`stalk up`. Every request needs the token in <data dir>/state/api.token.")
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.add_middleware(Guard, token=token, hosts=hosts)
    return app
