"""What a route reaches: the stack behind this server (FastAPI dependencies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from stalk.embedded.service.problems import not_ready

if TYPE_CHECKING:
    from stalk.embedded.control import Control
    from stalk.embedded.events import EventStore
    from stalk.embedded.service.hub import ChangeHub
    from stalk.embedded.stack import Stack


def the_stack(request: Request) -> Stack:
    return request.app.state.stack


def the_hub(request: Request) -> ChangeHub:
    return request.app.state.hub


def the_events(request: Request) -> EventStore:
    events = the_stack(request).events
    if events is None:
        raise not_ready("event store")
    return events


def the_control(request: Request) -> Control:
    control = the_stack(request).control
    if control is None:
        raise not_ready("control API")
    return control


def server_state(request: Request) -> Any:
    return request.app.state
