"""Tasks a user writes: progress, retries, failures."""

import time

from proj.celery import app


@app.task(bind=True)
def import_csv(self, path: str, rows: int = 4) -> dict:
    """Import a CSV file row by row, reporting progress."""
    for row in range(rows):
        self.update_state(state="PROGRESS", meta={"current": row + 1, "total": rows})
        time.sleep(0.05)
    return {"path": path, "rows": rows}


@app.task
def resize_image(path: str, width: int) -> str:
    """Resize one image to `width` pixels."""
    return f"{path}@{width}"


@app.task
def health() -> str:
    return "ok"


@app.task(bind=True, max_retries=2, default_retry_delay=0.1)
def flaky(self, fail_times: int = 1) -> int:
    if self.request.retries < fail_times:
        raise self.retry(exc=RuntimeError("not yet"))
    return self.request.retries


@app.task
def broken(reason: str) -> None:
    raise ValueError(reason)
