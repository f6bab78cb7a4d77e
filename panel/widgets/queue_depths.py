"""Messages waiting per queue (a bar scaled to the deepest queue, as wide as the column allows)."""

from __future__ import annotations

from textual import events
from textual.widgets import Static

from stalk.panel.formatting import bar
from stalk.panel.markup_text import escape
from stalk.panel.widgets.task_cells import fit

BAR_MAX, BAR_MIN = 20, 4
COUNT = 7  # " 123456": the count after the bar


class QueueDepths(Static):
    DEFAULT_CSS = "QueueDepths { height: auto; padding: 0 1; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._last: tuple[dict[str, int] | None, bool] = (None, False)

    def on_resize(self, _event: events.Resize) -> None:
        self.show(*self._last)

    def show(self, depths: dict[str, int] | None, available: bool) -> None:
        self._last = (depths, available)
        self.update(depths_markup(depths, available, self.size.width or 80))


def depths_markup(depths: dict[str, int] | None, available: bool, width: int) -> str:
    """One line per queue; the bar narrows (then the names are cut) so that no line wraps in `width`."""
    if not available:
        return "[b]Queues[/b]\n[$foreground-muted]queue depths need the control API[/]"
    if not depths:
        return "[b]Queues[/b]\n[$foreground-muted]no queues[/]"
    top = max(max(depths.values()), 1)
    name_width = max(len(q) for q in depths)
    bar_width = max(BAR_MIN, min(BAR_MAX, width - name_width - 2 - COUNT))
    name_width = max(1, min(name_width, width - bar_width - 2 - COUNT))
    lines = ["[b]Queues[/b]  waiting"]
    for queue, depth in sorted(depths.items()):
        style = "$warning" if depth else "$foreground-muted"
        lines.append(f"{escape(fit(queue, name_width))}  [{style}]{bar(depth / top, bar_width)}[/] {depth:>6}")
    return "\n".join(lines)
