"""The `stalk` command line: the click group `cli` (base.py) with one module per command group.

Each command module imports only base.py (and cluster.py, the control commands' helpers) and registers
its commands on `cli`; importing them here, once, is what registers them. Nothing in this package
imports the package itself, so there is no import cycle.
"""

from stalk.panel.cli import (  # noqa: F401  (register the commands)
    alerts,
    canvas,
    control,
    demo,
    quota,
    stack,
    tasks,
    webhooks,
    workers,
)
from stalk.panel.cli.base import cli

__all__ = ["cli"]
