"""The FastAPI application: the guard in front, the routes of each resource, errors as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from stalk.embedded.service import problems
from stalk.embedded.service.guard import OPEN_PATHS, Guard
from stalk.embedded.service.responses import JSONResponse
from stalk.embedded.service.routes import ROUTERS

API_PREFIX = "/api/v1"


def build_app(token: str, hosts: Iterable[str] = ()) -> FastAPI:
    # No Swagger/ReDoc pages: they load their scripts from a CDN and cannot send the token; the
    # OpenAPI document (token needed) and README's reference (embedded/service/docs.py) describe the API.
    app = FastAPI(title="Stalk stack API", version="1", default_response_class=JSONResponse, openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  description="One Celery stack (broker, workers, beat, events, control, quota) served by "
                              "`stalk up`. Every request needs the token in <data dir>/state/api.token.")
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.add_middleware(Guard, token=token, hosts=hosts)
    declare_token(app)
    return app


def declare_token(app: FastAPI) -> None:
    """The OpenAPI document says what the guard asks: the bearer token, on every path but the open ones."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            schema.setdefault("components", {})["securitySchemes"] = {"token": {
                "type": "http", "scheme": "bearer", "description": "the token in <data dir>/state/api.token"}}
            schema["security"] = [{"token": []}]
            for path in OPEN_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
