"""/stack: what this stack is (data dir, app, mode, broker, API address), and stopping it."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from stalk.embedded.broker.health import broker_problem
from stalk.embedded.in_flight import Unfinished, stop_consuming, unfinished
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
    started_by_panel: bool  # a panel started this stack process: it stops with that panel unless detached


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
        ready=stack.is_ready(), detached=stack.detached.is_set(), started_by_panel=stack.on_detach is not None)


@router.post("/stack/stop", response_model=Done, summary="Stop the whole stack (workers warm-stop first)")
def stop_stack(stack: Stack = Depends(the_stack)) -> Done:
    stack.request_stop()
    return Done(message="stopping: workers finish their current tasks, then beat and the broker stop")


@router.post("/stack/detach", response_model=Done,
             summary="Keep running when the terminal that started this stack closes")
def detach_stack(stack: Stack = Depends(the_stack)) -> Done:
    stack.detach()
    return Done(message="detached: the stack keeps running; `stalk attach` to look, `stalk down` to stop it")


class BrokerHealth(BaseModel):
    problem: str | None  # None: the broker answers


@router.get("/stack/broker", response_model=BrokerHealth,
            summary="Probe the broker from the stack process (the panel opens no broker connection)")
def broker_health(stack: Stack = Depends(the_stack)) -> BrokerHealth:
    return BrokerHealth(problem=stack_broker_problem(stack))


def stack_broker_problem(stack: Stack) -> str | None:
    """None when the broker answers (or there is none: eager); otherwise one line saying why not."""
    if stack.broker is None or stack.mode == "eager":
        return None
    return broker_problem(stack.app)


@router.get("/stack/unfinished", response_model=Unfinished,
            summary="What stopping the stack now would interrupt: running, held and queued tasks")
def stack_unfinished(stack: Stack = Depends(the_stack)) -> Unfinished:
    return unfinished(stack)


@router.post("/stack/stop-consuming", response_model=Done,
             summary="Stalk's workers finish what they run and take nothing new (before a stop)")
def stack_stop_consuming(stack: Stack = Depends(the_stack)) -> Done:
    stop_consuming(stack)
    return Done(message="the workers take no new task")
