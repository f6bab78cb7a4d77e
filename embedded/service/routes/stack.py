"""/stack: what this stack is (data dir, app, mode, broker, API address), and stopping it."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from stalk.embedded.service.deps import server_state, the_stack
from stalk.embedded.stack import Stack

router = APIRouter(tags=["stack"])


class StackStatus(BaseModel):
    pid: int
    data_dir: str
    app: str | None
    app_dir: str
    mode: str
    beat: bool
    broker: dict[str, Any] | None
    api: dict[str, Any]
    queues: list[str]
    task_modules_problem: str | None
    started_at: float | None
    ready: bool
    detached: bool


class Done(BaseModel):
    ok: bool = True
    message: str = ""


@router.get("/health", summary="Liveness probe (no token needed)")
def health() -> dict[str, str]:
    return {"status": "up"}


@router.get("/stack", response_model=StackStatus, summary="This stack: data dir, app, mode, broker, API")
def stack_status(stack: Stack = Depends(the_stack), state: Any = Depends(server_state)) -> StackStatus:
    config = stack.config
    return StackStatus(
        pid=os.getpid(), data_dir=str(stack.paths.data_dir), app=config.app, app_dir=str(config.import_dir),
        mode=stack.mode, beat=config.beat_enabled(), broker=asdict(stack.broker) if stack.broker else None,
        api=state.server.address(), queues=sorted({q for spec in stack.worker_specs for q in spec.queues}),
        task_modules_problem=stack.task_modules_problem, started_at=stack.started_at,
        ready=stack.is_ready(), detached=stack.detached.is_set())


@router.post("/stack/stop", response_model=Done, summary="Stop the whole stack (workers warm-stop first)")
def stop_stack(stack: Stack = Depends(the_stack)) -> Done:
    stack.request_stop()
    return Done(message="stopping: workers finish their current tasks, then beat and the broker stop")


@router.post("/stack/detach", response_model=Done,
             summary="Keep running when the terminal that started this stack closes")
def detach_stack(stack: Stack = Depends(the_stack)) -> Done:
    stack.detach()
    return Done(message="detached: the stack keeps running; `stalk attach` to look, `stalk down` to stop it")
