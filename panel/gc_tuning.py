"""Garbage-collector settings for a panel that holds up to 100,000 task records.

With the default thresholds, rendering under load starts about one full collection a second, and each
walks the whole store (250-280 ms with 100,000 records). Fewer young collections cut the full ones
(bench/panel_load.py, 45 s at 1,000 events/s: p99 key-to-repaint 366 -> 240 ms). gc.freeze() once the
store was loaded measured no better and let RSS grow, so it is not used."""

from __future__ import annotations

import gc

THRESHOLDS = (5_000, 20, 20)


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)
