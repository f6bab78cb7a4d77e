"""CPU and RSS of a supervised process and everything below it (pool children included)."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcStats:
    cpu_percent: float = 0.0
    rss: int = 0
    processes: int = 0


class TreeSampler:
    """Keeps psutil.Process objects between samples so cpu_percent measures the interval."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, pid: int | None) -> ProcStats:
        if pid is None:
            self._procs.clear()
            return ProcStats()
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            self._procs.clear()
            return ProcStats()
        cpu, rss, seen = 0.0, 0, {}
        for proc in tree:
            kept = self._procs.get(proc.pid, proc)
            try:
                cpu += kept.cpu_percent(None)
                rss += kept.memory_info().rss
            except psutil.Error:
                continue
            seen[proc.pid] = kept
        self._procs = seen
        return ProcStats(cpu_percent=cpu, rss=rss, processes=len(seen))
