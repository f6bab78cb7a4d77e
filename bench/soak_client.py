"""The soak's outside client: a plain Celery client in its own process, as a user's web app would be.

It imports the user's app (tests/projects/soak_proj) with the broker from the environment (what
`eval "$(stalk env)"` gives) and sends `--count` tasks at `--rate` per second. Each send that returned
(the broker acknowledged it) is one line `id<TAB>name<TAB>unix time` in `--out`; a send that raised is
`!id<TAB>name<TAB>error`.

    python bench/soak_client.py --out acked.tsv --count 1000 --rate 20 --prefix c
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent / "tests" / "projects" / "soak_proj"


def task_name(i: int) -> str:
    """One task in ten is the longer `render`: often running when a fault hits."""
    return "soakproj.tasks.render" if i % 10 == 0 else "soakproj.tasks.fetch"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--prefix", default="c")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    from soakproj.celery import app  # noqa: PLC0415  (the user's app, from the project's folder)

    start = time.monotonic()
    with open(args.out, "a", buffering=1) as out:
        for i in range(args.count):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            task_id, name = f"{args.prefix}-{uuid.uuid4()}", task_name(i)
            try:
                app.send_task(name, (i,), task_id=task_id)
            except Exception as exc:  # noqa: BLE001  (a refused send is the data, not a crash)
                out.write(f"!{task_id}\t{name}\t{type(exc).__name__}: {exc}\n")
                continue
            out.write(f"{task_id}\t{name}\t{time.time()}\n")


if __name__ == "__main__":
    main()
