"""A plain Celery client in its own process (no Stalk code): one `reliable.run` task per line read on
stdin (the line: the task's seconds of sleep), its id printed once `send_task` returned (the submission
is acknowledged). Used by
tests/test_faults_reliable.py. argv: broker URL."""

from __future__ import annotations

import sys

from celery import Celery


def main() -> None:
    app = Celery("plain_client", broker=sys.argv[1], set_as_current=False)
    for line in sys.stdin:
        result = app.send_task("reliable.run", (float(line.strip() or 0),), queue="reliable")
        print(result.id, flush=True)


if __name__ == "__main__":
    main()
