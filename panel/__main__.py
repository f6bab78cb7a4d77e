"""`stalk` and `python -m stalk`: one entry point for the panel, the headless stack and its children."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from stalk.panel.frozen import dispatch_frozen_helpers

    dispatch_frozen_helpers()
    from stalk.panel.cli import cli

    cli.main(args=argv, prog_name="stalk")


if __name__ == "__main__":
    main(sys.argv[1:])
