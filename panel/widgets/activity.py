"""Throughput and failure sparklines plus task counts by state."""

from __future__ import annotations

from textual.widgets import Static

from stalk.panel.colours import markup
from stalk.panel.formatting import sparkline

WIDTH = 48


class Activity(Static):
    DEFAULT_CSS = "Activity { height: auto; padding: 0 1; }"

    def show(self, throughput: list[float] | None, failures: list[float] | None,
             counts: dict[str, int] | None, available: bool) -> None:
        if not available:
            self.update("[b]Activity[/b]\n[$foreground-muted]no event store on this stack[/]")
            return
        done = throughput or []
        failed = failures or []
        width = self._spark_width()
        rate = sum(done[-10:]) / 10 if done else 0.0
        lines = [
            "[b]Activity[/b]  (last 60 s)",
            f"done    [$success]{sparkline(done, width) or '·'}[/]  {rate:.1f}/s",
            f"failed  [$error]{sparkline(failed, width) or '·'}[/]  {int(sum(failed))} in 60 s",
        ]
        if counts:
            lines.append("  ".join(markup(state, f"{state.lower()} {n}") for state, n in sorted(counts.items())))
        else:
            lines.append("[$foreground-muted]no tasks seen yet: 7 opens Submit[/]")  # the first screen says how
        self.update("\n".join(lines))

    def _spark_width(self) -> int:
        """Sparklines fill what the label and the rate leave of the line (never wrap)."""
        available = self.content_size.width - len("failed  ") - len("  999 in 60 s")
        return max(8, min(WIDTH, available)) if self.content_size.width else WIDTH
