"""Per-quota used / reserved / remaining as one bar each."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from stalk.panel.markup_text import escape

WIDTH = 30


def quota_bar(used: float, reserved: float, limit: float, width: int = WIDTH) -> str:
    if limit <= 0:
        return "[$foreground-muted]" + "░" * width + "[/]"
    u = min(width, int(used / limit * width))
    r = min(width - u, int(reserved / limit * width))
    fill = "$error" if used + reserved >= limit else "$success"
    return f"[{fill}]{'█' * u}[/][$warning]{'▒' * r}[/][$foreground-muted]{'░' * (width - u - r)}[/]"


def _get(obj: Any, *names: str, default: Any = 0) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


class QuotaMeter(Static):
    DEFAULT_CSS = "QuotaMeter { height: auto; padding: 0 1; }"

    def show(self, quotas: list[Any] | None, available: bool) -> None:
        if not available:
            self.update("[b]Quota[/b]\n[$foreground-muted]no quota ledger on this stack[/]")
            return
        if not quotas:
            self.update("[b]Quota[/b]\n[$foreground-muted]no quotas defined[/]")
            return
        lines = ["[b]Quota[/b]  [$success]█ used[/] [$warning]▒ reserved[/] ░ remaining"]
        width = max(8, min(WIDTH, self.content_size.width - 42)) if self.content_size.width else WIDTH
        for q in quotas:
            used, reserved, limit = (float(_get(q, "used")), float(_get(q, "reserved")),
                                     float(_get(q, "limit", "daily_limit")))
            remaining = max(0.0, limit - used - reserved)
            name = escape(str(_get(q, "name", default="?")))
            lines.append(f"{name:<12} {quota_bar(used, reserved, limit, width)} {used:,.0f}+{reserved:,.0f}"
                         f"/{limit:,.0f}  {remaining:,.0f} left")
        self.update("\n".join(lines))
