"""The task types a stack can run, as the Submit screen shows them: name, signature, docstring and the
queue the app routes it to. Read in the stack process (it imports the user's app; the panel does not)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskType:
    name: str
    signature: str  # "demo.add(x, y)"; "" when this stack's app does not define it (a worker's task)
    doc: str  # the docstring, one line per paragraph
    queue: str | None  # the queue the app routes it to (None: unknown, or eager)


def describe_task(app: Any, name: str) -> tuple[str, str]:
    """(signature, docstring) of a task `app` registers; ("", "") when it does not."""
    task = app.tasks.get(name) if app is not None else None
    if task is None:
        return "", ""
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return f"{name}(...)", inspect.getdoc(task) or ""
    if params and params[0].name == "self":  # a bound task's run shows its task argument
        params = params[1:]
    signature = f"{name}({', '.join(str(p) for p in params)})"
    return signature, reflow(inspect.getdoc(task.run) or "")


def reflow(doc: str) -> str:
    """A docstring's paragraphs as single lines (the screen wraps them to its width)."""
    return "\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip())


def task_type(name: str, app: Any, route: Any = None) -> TaskType:
    """`name` described from `app`, routed by `route(name)`."""
    signature, doc = describe_task(app, name)
    try:
        queue = route(name) if route is not None else None
    except Exception:  # a router that needs the arguments: the route is told at submit
        queue = None
    return TaskType(name, signature, doc, queue)


def task_types(names: set[str] | frozenset[str], app: Any, route: Any = None) -> list[TaskType]:
    """`names`, Celery's own `celery.*` left out, described from `app` (see task_type)."""
    return [task_type(name, app, route) for name in sorted(n for n in names if not n.startswith("celery."))]
