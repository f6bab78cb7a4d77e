"""The built-in demo Celery app that Stalk runs when no -A is given.

Public: LoadGenerator and parse_rate (`stalk demo`'s task mix), loaded on first use so that importing
one demo module (a worker loading the demo app) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stalk.embedded.demo.load import LoadGenerator, parse_rate

__all__ = ["LoadGenerator", "parse_rate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("stalk.embedded.demo.load"), name)
    raise AttributeError(f"module 'stalk.embedded.demo' has no attribute {name!r}")
