"""Entry hooks a frozen (PyInstaller) binary needs before the CLI parses anything."""

from __future__ import annotations

import sys


def dispatch_frozen_helpers() -> None:
    """billiard's spawn helpers re-run the binary with their own argv; hand those to billiard."""
    if not getattr(sys, "frozen", False):
        return
    try:
        from billiard import freeze_support
    except ImportError:
        return
    freeze_support()
