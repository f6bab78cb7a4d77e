"""Log lines with level colouring, a filter and follow mode."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.widgets import RichLog

from stalk.embedded import LogLine
from stalk.panel.colours import LOG_LEVEL_ROLES, colour
from stalk.panel.formatting import clock_time

LEVEL = re.compile(r"\b(CRITICAL|ERROR|WARNING|INFO|DEBUG)\b")
STALK = "[stalk]"


def line_text(line: LogLine, variables: Mapping[str, str], now: float | None = None) -> Text:
    text = Text(f"{clock_time(line.ts, now)} ", style="dim")
    match = LEVEL.search(line.text)
    role = LOG_LEVEL_ROLES.get(match.group(1)) if match else None
    if line.text.startswith(STALK):
        role = "warning"
    body = Text(line.text, style=colour(role, variables) if role else "")
    if role == "error":
        body.stylize("bold")
    return text + body


def matches(line: LogLine, needle: str) -> bool:
    return not needle or needle.lower() in line.text.lower()


class LogView(RichLog):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(wrap=False, highlight=False, markup=False, max_lines=5000, **kwargs)  # type: ignore[arg-type]

    def show_all(self, lines: Iterable[LogLine], needle: str, variables: Mapping[str, str]) -> None:
        self.clear()
        self.append(lines, needle, variables)

    def append(self, lines: Iterable[LogLine], needle: str, variables: Mapping[str, str]) -> None:
        now = getattr(self.app, "clock", time.time)()  # the panel's: a line of another day shows its date
        for line in lines:
            if matches(line, needle):
                self.write(line_text(line, variables, now), scroll_end=self.auto_scroll)
