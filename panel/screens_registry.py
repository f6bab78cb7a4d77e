"""Mode name -> screen class (kept apart from app.py so screens can grow without touching it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

from stalk.panel.screens.beat import BeatScreen
from stalk.panel.screens.dashboard import DashboardScreen
from stalk.panel.screens.hooks import HooksScreen
from stalk.panel.screens.logs import LogsScreen
from stalk.panel.screens.quota import QuotaScreen
from stalk.panel.screens.submit import SubmitScreen
from stalk.panel.screens.tasks import TasksScreen
from stalk.panel.screens.workers import WorkersScreen

MODE_SCREENS: dict[str, str | Callable[[], Screen[Any]]] = {  # typed as Textual's App.MODES
    "dashboard": DashboardScreen,
    "tasks": TasksScreen,
    "workers": WorkersScreen,
    "beat": BeatScreen,
    "quota": QuotaScreen,
    "logs": LogsScreen,
    "submit": SubmitScreen,
    "hooks": HooksScreen,
}
