"""/metrics: Prometheus metrics in the text format (Flower's names and Stalk's own: service/metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from stalk.embedded.service.deps import server_state
from stalk.embedded.service.problems import not_ready

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            summary="Prometheus metrics: Flower's (flower_*) and Stalk's own (stalk_*), in the text format",
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request, state: Any = Depends(server_state)) -> Response:
    found = getattr(state.server, "metrics", None)
    if found is None:
        raise not_ready("metrics")
    body, content_type = found.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
