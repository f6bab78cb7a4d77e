"""Broker mode, address and what its durability means (how much a crash can lose)."""

from __future__ import annotations

from textual.widgets import Static

from stalk.embedded import BrokerInfo
from stalk.panel.markup_text import escape


class BrokerLine(Static):
    DEFAULT_CSS = "BrokerLine { height: auto; padding: 0 1; }"

    def on_mount(self) -> None:
        self.watch(self.app, "broker", self.show)
        self.watch(self.app, "broker_problem", lambda _p: self.show(self.app.broker))  # type: ignore[attr-defined]
        self.watch(self.app, "processes", lambda _p: self.show(self.app.broker))  # type: ignore[attr-defined]

    def show(self, info: BrokerInfo | None) -> None:
        if info is None:
            self.update("[b]Broker[/b]  [$foreground-muted]not started yet[/]")
            return
        problem = self.app.broker_problem  # type: ignore[attr-defined]
        health = "[$error]down[/]" if problem else "[$success]up[/]"
        pid = self._pid(info)
        where = escape(info.display_url) + (f"  pid {pid}" if pid else "")
        if info.mode == "eager":
            health, where = "[$foreground-muted]in process[/]", ""
        self.update(f"[b]Broker[/b]  [b]{info.mode}[/b] {health}  {where}\n"
                    f"[$foreground-muted]Durability:[/] {escape(info.durability)}")

    def _pid(self, info: BrokerInfo) -> int | None:
        """The supervised broker's pid now (it changes when the broker is restarted), else the one it
        started with."""
        for p in self.app.processes:  # type: ignore[attr-defined]
            if p.role == "broker":
                return p.pid
        return info.pid
