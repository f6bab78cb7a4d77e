"""The frozen binary's entry point: the same `main` as `stalk` and `python -m stalk`.

stalk.panel.__main__.main hands billiard's spawn helpers (`--billiard-fork`, `-c ...semaphore_tracker`)
to billiard before click parses anything, so the binary can be its own worker, beat and pool child.
"""

from stalk.panel.__main__ import main

if __name__ == "__main__":
    main()
