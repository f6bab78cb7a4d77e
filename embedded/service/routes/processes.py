"""/processes: the supervised processes (and dead stack threads), their actions and their logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Depends, Query

from stalk.embedded.service.deps import the_stack
from stalk.embedded.service.problems import ApiProblem
from stalk.embedded.stack import OWN_LOG, Stack
from stalk.embedded.supervisor import LogLine, ProcessInfo

router = APIRouter(tags=["processes"])
Verb = Literal["restart", "stop", "start", "kill"]


@router.get("/processes", response_model=list[ProcessInfo], summary="Every supervised process, then dead threads")
def list_processes(stack: Stack = Depends(the_stack)) -> list[ProcessInfo]:
    return stack.processes()


def _named(stack: Stack, name: str) -> ProcessInfo:
    for proc in stack.processes():
        if proc.name == name:
            return proc
    known = ", ".join(p.name for p in stack.processes()) or "none yet"
    raise ApiProblem(404, f"no process named {name!r} (processes: {known})")


@router.get("/processes/{name}", response_model=ProcessInfo, summary="One process")
def get_process(name: str, stack: Stack = Depends(the_stack)) -> ProcessInfo:
    return _named(stack, name)


@router.post("/processes/{name}/{verb}", response_model=ProcessInfo,
             summary="restart, stop, start or kill (SIGKILL, as a crash: the supervisor restarts it)")
def act(name: str, verb: Verb, stack: Stack = Depends(the_stack)) -> ProcessInfo:
    proc = _named(stack, name)
    if proc.role == "thread":
        raise ApiProblem(409, f"{name} is a thread of the stack, restarted by the stack itself")
    actions: dict[str, Callable[[str], None]] = {
        "restart": stack.restart_process, "stop": stack.stop_process,
        "start": stack.start_process, "kill": stack.kill_process}
    actions[verb](name)
    return _named(stack, name)


@router.get("/logs/{name}", response_model=list[LogLine],
            summary=f"A process's output after line `since` ({OWN_LOG!r}: Stalk's own lines about the stack)")
def logs(name: str, since: int = Query(0, ge=0), limit: int = Query(5000, ge=1, le=50_000),
         stack: Stack = Depends(the_stack)) -> list[LogLine]:
    if name != OWN_LOG:
        _named(stack, name)
    return stack.logs(name, since)[-limit:]
