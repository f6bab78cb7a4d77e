"""Mode name -> screen class (kept apart from app.py so screens can grow without touching it)."""

from __future__ import annotations

from .screens.dashboard import DashboardScreen
from .screens.logs import LogsScreen
from .screens.placeholder import placeholder
from .screens.submit import SubmitScreen
from .screens.tasks import TasksScreen

MODE_SCREENS = {
    "dashboard": DashboardScreen,
    "tasks": TasksScreen,
    "workers": placeholder("workers"),
    "beat": placeholder("beat"),
    "quota": placeholder("quota"),
    "logs": LogsScreen,
    "submit": SubmitScreen,
}
