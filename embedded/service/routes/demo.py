"""/demo/load: the demo app's steady task mix, sent from the stack process (`stalk demo --ui`: the panel
asks for it once the stack is ready; it holds no Celery app of its own). Only when the stack runs the
built-in demo app (409 otherwise); one load at a time (a new one replaces it); it stops with the stack."""

from __future__ import annotations

import importlib
import threading
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from stalk.embedded.paths import DEMO_APP
from stalk.embedded.service.deps import server_state, the_stack
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.stack import Stack

router = APIRouter(tags=["demo"])
#: loaded by name, as the demo app is (DEMO_APP): the stack's core never imports the demo
DEMO_LOAD = "stalk.embedded.demo.load"
MAX_RATE = 500.0
_lock = threading.Lock()


class LoadRequest(BaseModel):
    rate: float = Field(gt=0, le=MAX_RATE, description="tasks per second")
    duration: float | None = Field(None, gt=0, description="seconds, then the load stops (the stack stays)")
    seed: int = 7


class LoadStatus(BaseModel):
    running: bool
    rate: float
    duration: float | None
    submitted: int
    errors: int
    elapsed: float
    last_error: str | None
    by_task: dict[str, int]


def _status(load: Any) -> LoadStatus:
    snap = load.snapshot()
    return LoadStatus(running=not load.finished(), rate=snap["rate"], duration=load.duration,
                      submitted=snap["submitted"], errors=snap["errors"], elapsed=snap["elapsed"],
                      last_error=snap["last_error"], by_task=snap["by_task"])


def _demo_stack(stack: Stack = Depends(the_stack)) -> Stack:
    if stack.config.app not in (None, DEMO_APP):
        raise ApiProblem(409, f"this stack runs {stack.config.app}, not the demo app: no demo load here "
                              "(`stalk demo` runs the demo app)")
    return stack


@router.post("/demo/load", response_model=LoadStatus, summary="Start the demo's task mix (replaces a running one)")
def start_load(body: LoadRequest, stack: Stack = Depends(_demo_stack), state: Any = Depends(server_state)) -> LoadStatus:
    generator = importlib.import_module(DEMO_LOAD).LoadGenerator
    with _lock:
        old = getattr(state, "demo_load", None)
        if old is not None:
            old.stop()
        load = state.demo_load = generator(stack.app, body.rate, duration=body.duration, seed=body.seed).start()
        stack.at_stop(load.stop)
    return _status(load)


@router.get("/demo/load", response_model=LoadStatus, summary="The demo load's progress (404: none started)")
def get_load(state: Any = Depends(server_state)) -> LoadStatus:
    load = getattr(state, "demo_load", None)
    if load is None:
        raise ApiProblem(404, "no demo load was started (POST /demo/load)")
    return _status(load)


@router.delete("/demo/load", response_model=LoadStatus, summary="Stop the demo load (404: none started)")
def stop_load(state: Any = Depends(server_state)) -> LoadStatus:
    load = getattr(state, "demo_load", None)
    if load is None:
        raise ApiProblem(404, "no demo load was started (POST /demo/load)")
    load.stop()
    return _status(load)
