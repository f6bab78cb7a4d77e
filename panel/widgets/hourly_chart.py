"""Units used per hour of today's quota-day as a vertical bar chart (eighth-block precision)."""

from __future__ import annotations

from textual.widgets import Static

EIGHTHS = " ▁▂▃▄▅▆▇█"
HEIGHT = 8
AXIS = 7


def _cell(value: float, top: float, row: int, height: int) -> str:
    """Two characters of one bar at `row` (0 = bottom)."""
    fill = value / top * height - row if top > 0 else 0
    if fill >= 1:
        return "██"
    if fill <= 0:
        return "  "
    return EIGHTHS[max(1, round(fill * 8))] * 2


def hourly_chart(values: list[int], current: int | None, start_hour: int, height: int = HEIGHT) -> str:
    """Markup: one 3-column slot per hour; the current hour in $accent, hours to come dotted."""
    top = max(values, default=0)
    lines = []
    for row in range(height - 1, -1, -1):
        label = f"{top:>{AXIS - 1},} " if row == height - 1 else (f"{0:>{AXIS - 1}} " if row == 0 else " " * AXIS)
        cells = []
        for hour, value in enumerate(values):
            if current is not None and hour > current:
                cells.append("[$foreground-muted]··[/] " if row == 0 else "   ")
                continue
            role = "$accent" if hour == current else "$primary"
            text = _cell(value, top, row, height)
            cells.append(f"[{role}]{text}[/] " if text.strip() else f"{text} ")
        lines.append(f"[$foreground-muted]{label}[/]" + "".join(cells).rstrip())
    ticks = "".join(f"{(start_hour + h) % 24:02d}    "[:3] if h % 3 == 0 else "   " for h in range(len(values)))
    lines.append(" " * AXIS + f"[$foreground-muted]{ticks.rstrip()}[/]")
    return "\n".join(lines)


class HourlyChart(Static):
    DEFAULT_CSS = "HourlyChart { height: auto; padding: 0 1; }"

    def show(self, values: list[int] | None, current: int | None, start_hour: int, title: str) -> None:
        if not values or not any(values):
            self.update(f"[b]{title}[/b]\n[$foreground-muted]nothing used yet today[/]")
            return
        self.update(f"[b]{title}[/b]\n" + hourly_chart(values, current, start_hour))
