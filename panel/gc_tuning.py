"""Garbage-collector settings for a panel that holds up to 100,000 task records.

With the default thresholds every full collection walks the whole store (250-280 ms with 100,000
records, about once a second while rendering under load: bench/panel_load.py). The store's records
hold no reference cycles, so freezing what exists once the stack is up (history loaded) takes them out
of the collector's walks without keeping any garbage alive; fewer young collections do the rest."""

from __future__ import annotations

import gc

THRESHOLDS = (5_000, 20, 20)


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)


def freeze_long_lived() -> None:
    """Once, when the stack is ready: move everything alive now out of future full collections."""
    gc.collect()
    gc.freeze()
