from proj.celery import app


@app.task
def daily_report(day: str, *, recipients: list | None = None) -> dict:
    """Build the report for `day`."""
    return {"day": day, "sent_to": recipients or []}
