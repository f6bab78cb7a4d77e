"""The API's resources, one module each; ROUTERS is what app.build_app mounts under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from stalk.embedded.service.routes import (
    alerts,
    changes,
    control,
    demo,
    metrics,
    processes,
    quota,
    stack,
    tasks,
    webhooks,
)

ROUTERS: list[APIRouter] = [stack.router, processes.router, tasks.router, control.router, quota.router,
                            changes.router, metrics.router, webhooks.router,
                            alerts.router, demo.router]
