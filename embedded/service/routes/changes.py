"""/changes: a server-sent event stream of what changed (task ids, worker hostnames, process names, log
names, the alert rules that changed state), one batch per frame; `resync` names a topic whose backlog
overflowed (re-read it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from stalk.embedded.service.deps import server_state, the_hub
from stalk.embedded.service.hub import FRAME, TOPICS, ChangeHub

router = APIRouter(tags=["changes"])
KEEPALIVE = 15.0  # seconds between comments on a quiet stream (proxies and tunnels close idle ones)


@router.get("/changes", summary="Server-sent events: {tasks, workers, processes, logs, alerts, resync} per frame",
            response_class=StreamingResponse)
async def changes(request: Request, topics: str = Query(",".join(TOPICS)), hub: ChangeHub = Depends(the_hub),
                  state: Any = Depends(server_state)) -> StreamingResponse:
    sub = hub.subscribe(t.strip() for t in topics.split(","))

    async def stream() -> AsyncIterator[str]:
        try:
            yield "event: hello\ndata: {}\n\n"
            quiet = 0.0
            while not state.closing.is_set():
                batch = sub.drain()
                if batch is not None:
                    quiet = 0.0
                    yield f"data: {json.dumps(batch)}\n\n"
                elif quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(FRAME)
                quiet += FRAME
                if await request.is_disconnected():
                    break
        finally:
            hub.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})
