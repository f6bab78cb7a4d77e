"""`python -m stalk`: the same entry point as the `stalk` command (and the frozen binary)."""

import sys

from stalk.panel.__main__ import main

if __name__ == "__main__":
    main(sys.argv[1:])
