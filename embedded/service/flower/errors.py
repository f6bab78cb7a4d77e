"""Flower's errors: a status and the reason as the body's text (tornado's `HTTPError(status, reason)`,
which Flower's API handlers write as plain text). Served as text/plain: a task name or id echoed in a
reason must never be read as HTML."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("stalk.flower")
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="flower"'}


class FlowerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(message, status_code=status, media_type="text/plain; charset=utf-8", headers=headers)


def answer(data: Any, status: int = 200) -> Response:
    """JSON as tornado's json_encode writes it (NaN allowed; what JSON cannot hold goes as its repr)."""
    return Response(json.dumps(data, default=repr), status_code=status,
                    media_type="application/json; charset=UTF-8")


def install(app: FastAPI) -> None:
    @app.exception_handler(FlowerError)
    async def _flower(_request: Request, exc: FlowerError) -> Response:
        return text(exc.message, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return text(str(exc.detail), exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> Response:
        log.exception("Flower-compatible API route failed")
        return text(f"internal error: {type(exc).__name__}: {exc}", 500)
