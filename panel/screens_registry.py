"""Mode name -> screen class (kept apart from app.py so screens can grow without touching it)."""

from __future__ import annotations

from .screens.beat import BeatScreen
from .screens.dashboard import DashboardScreen
from .screens.logs import LogsScreen
from .screens.quota import QuotaScreen
from .screens.submit import SubmitScreen
from .screens.tasks import TasksScreen
from .screens.workers import WorkersScreen

MODE_SCREENS = {
    "dashboard": DashboardScreen,
    "tasks": TasksScreen,
    "workers": WorkersScreen,
    "beat": BeatScreen,
    "quota": QuotaScreen,
    "logs": LogsScreen,
    "submit": SubmitScreen,
}
