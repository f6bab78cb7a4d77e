"""Messages waiting per queue (a bar scaled to the deepest queue)."""

from __future__ import annotations

from textual.widgets import Static

from ..formatting import bar


class QueueDepths(Static):
    DEFAULT_CSS = "QueueDepths { height: auto; padding: 0 1; }"

    def show(self, depths: dict[str, int] | None, available: bool) -> None:
        if not available:
            self.update("[b]Queues[/b]\n[$foreground-muted]queue depths need the control API[/]")
            return
        if not depths:
            self.update("[b]Queues[/b]\n[$foreground-muted]no queues[/]")
            return
        top = max(max(depths.values()), 1)
        width = max(len(q) for q in depths)
        lines = ["[b]Queues[/b]  waiting"]
        for queue, depth in sorted(depths.items()):
            style = "$warning" if depth else "$foreground-muted"
            lines.append(f"{queue:<{width}}  [{style}]{bar(depth / top, 20)}[/] {depth:>6}")
        self.update("\n".join(lines))
