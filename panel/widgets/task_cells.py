"""One task row as terminal segments, cell by cell: what TaskTable renders once per row and caches.

Built straight from strings and cached styles (no rich Text per cell): a row costs ~30 µs instead of
~500 µs, which matters when a live refresh brings a screenful of changed rows."""

from __future__ import annotations

from collections.abc import Mapping

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style

from stalk.panel.colours import colour, state_text
from stalk.panel.formatting import clock_time, duration, printable
from stalk.panel.task_rows import TaskRow

COLUMNS = ("state", "name", "id", "args", "worker", "queue", "received", "runtime", "retries", "progress")
WIDTHS = (9, 16, 8, 15, 10, 8, 8, 7, 3, 14)
CROPPED = frozenset({"id"})  # cut without an ellipsis: an id prefix is what people read and type
GROWS = {"args": 3, "name": 1}  # who takes spare width, by share; they give it back first when narrow
MIN_WIDTH = 6
RECEIVED_WIDTH = WIDTHS[COLUMNS.index("received")]  # HH:MM:SS; a date in front widens it
PAD = " "  # one blank cell each side of a cell, as DataTable draws them
BAR = 10


def fit(text: str, width: int, ellipsis: bool = True) -> str:
    """`text` in exactly `width` cells: padded, or cut (ending in … unless `ellipsis` is False)."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    if not ellipsis or width < 2:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def column_widths(width: int, received: int = RECEIVED_WIDTH) -> tuple[int, ...]:
    """WIDTHS fitted to `width`: spare cells go to args and name, and come from them first. `received`:
    the time column's width (wider when a row shows a date: formatting.clock_width)."""
    widths = dict(zip(COLUMNS, WIDTHS, strict=True))
    widths["received"] = received
    spare = width - sum(widths.values()) - 2 * len(PAD) * len(COLUMNS)
    if spare > 0:
        total = sum(GROWS.values())
        for column, share in GROWS.items():
            widths[column] += spare * share // total
    else:
        for column in GROWS:
            give = min(-spare, widths[column] - MIN_WIDTH)
            widths[column] -= give
            spare += give
    return tuple(widths[c] for c in COLUMNS)


class CellStyles:
    """The theme's styles for cells, resolved once per theme."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = variables
        self.dim = Style(dim=True)
        self.bar = Style.parse(colour("primary", variables))
        self._states: dict[str, Style] = {}

    def state(self, state: str) -> Style:
        style = self._states.get(state)
        if style is None:
            style = self._states[state] = Style.parse(str(state_text(state, self.variables).style) or "none")
        return style


def progress_segments(progress: float | None, width: int, styles: CellStyles) -> list[Segment]:
    if progress is None:
        return [Segment(" " * width)]
    full = int(progress * BAR)
    rest = fit("░" * (BAR - full) + f"{progress * 100:3.0f}%", max(0, width - full))
    return [Segment("█" * full, styles.bar), Segment(rest, styles.dim)]


def queue_segment(row: TaskRow, width: int, styles: CellStyles) -> Segment:
    """The queue; one inferred from the app's routes is dim and ends in "?" (never shown as fact)."""
    if not row.queue_inferred:
        return Segment(fit(row.queue, width))
    text = row.queue + "?"
    if cell_len(text) > width:
        text = fit(row.queue, max(0, width - 1)) + "?"[:width]
    return Segment(fit(text, width), styles.dim)


def row_segments(row: TaskRow, widths: tuple[int, ...], styles: CellStyles, now: float | None = None) -> list[Segment]:
    """The row's cells, each padded by one blank each side; no row style (the table adds it). `now`: the
    panel's clock (a time of another day shows its date)."""
    state_w, name_w, id_w, args_w, worker_w, queue_w, received_w, runtime_w, retries_w, progress_w = widths
    cells = [
        Segment(fit(row.state, state_w), styles.state(row.state)),
        Segment(fit(row.name, name_w)),
        Segment(fit(printable(row.task_id), id_w, ellipsis=False)),  # kept as sent (a key): shown printable
        Segment(fit(row.args, args_w), styles.dim),
        Segment(fit(row.worker, worker_w)),
        queue_segment(row, queue_w, styles),
        Segment(fit(clock_time(row.received, now), received_w)),
        Segment(fit(duration(row.runtime), runtime_w)),
        Segment(fit(str(row.retries or ""), retries_w)),
    ]
    segments: list[Segment] = []
    for cell in cells:
        segments += (Segment(PAD), cell, Segment(PAD))
    segments.append(Segment(PAD))
    segments += progress_segments(row.progress, progress_w, styles)
    segments.append(Segment(PAD))
    return segments


def row_width(widths: tuple[int, ...]) -> int:
    """Cells in a row drawn with these column widths (each cell padded both sides)."""
    return sum(widths) + 2 * len(PAD) * len(widths)


def header_text(widths: tuple[int, ...], sort: tuple[str, bool] | None) -> str:
    """Column titles, cropped; the sort arrow sits in the sorted column's right padding."""
    parts = []
    for column, width in zip(COLUMNS, widths, strict=True):
        right = ("↓" if sort[1] else "↑") if sort is not None and sort[0] == column else PAD
        parts.append(PAD + fit(column, width, ellipsis=False) + right)
    return "".join(parts)
