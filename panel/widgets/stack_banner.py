"""A banner under the mode bar: stack start progress, start failure, or a broker that went away."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from stalk.panel.messages import Phase


class StackBanner(Horizontal):
    """Watches the app's `phase` and `broker_problem`; hidden while all is well."""

    DEFAULT_CSS = """
    StackBanner { height: 1; display: none; padding: 0 1; }
    StackBanner.-starting { display: block; background: $primary-muted; }
    StackBanner.-failed, StackBanner.-down { display: block; background: $error-muted; }
    StackBanner.-stopping { display: block; background: $warning-muted; }
    StackBanner Label { width: 1fr; }
    StackBanner ProgressBar { width: 40; display: none; }
    StackBanner.-starting ProgressBar { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Label(id="banner-text")
        yield ProgressBar(show_eta=False, id="banner-progress")

    def on_mount(self) -> None:
        self.watch(self.app, "phase", self._refresh_banner)
        self.watch(self.app, "broker_problem", self._refresh_banner)

    def _refresh_banner(self, _value: object = None) -> None:
        phase: Phase = self.app.phase  # type: ignore[attr-defined]
        problem: str | None = self.app.broker_problem  # type: ignore[attr-defined]
        kind = phase.kind if phase.kind in ("starting", "failed", "stopping") else ""
        if not kind and problem:
            kind = "down"
        self.set_class(kind == "starting", "-starting")
        self.set_class(kind == "failed", "-failed")
        self.set_class(kind == "stopping", "-stopping")
        self.set_class(kind == "down", "-down")
        label = self.query_one("#banner-text", Label)
        if kind == "starting":
            count = f" ({phase.done}/{phase.total} up)" if phase.total else ""
            label.update(f"Starting the stack: {phase.text}{count}…")
            bar = self.query_one(ProgressBar)
            bar.update(total=phase.total or None, progress=phase.done)
        elif kind == "failed":
            label.update(f"The stack could not start: {phase.text}")
        elif kind == "stopping":
            label.update(f"Stopping the stack: {phase.text}…")
        elif kind == "down":
            label.update(f"{problem}; reconnecting…")
