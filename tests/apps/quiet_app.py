"""An app whose workers print no INFO line: connecting `setup_logging` tells Celery to configure no
logging, so the worker never logs "<name> ready." (Stalk must still find it ready)."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

app = Celery("quiet_app")
app.conf.task_default_queue = "quiet"


@signals.setup_logging.connect
def leave_logging_alone(**_: Any) -> None:
    """Celery configures logging only when nothing is connected to this signal."""


@app.task(name="quiet.add")
def add(x: int, y: int) -> int:
    return x + y
