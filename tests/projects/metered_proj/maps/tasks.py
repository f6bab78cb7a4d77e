"""A task metered on a daily API quota, as a user meters one with Stalk."""

from maps.celery import app
from stalk.quota import metered


@app.task(bind=True)
@metered("geo", units="geocode")
def geocode(self, address: str, priority: bool = False) -> dict:
    """Look up `address` (one paid API call)."""
    return {"address": address, "lat": 0.0, "lon": 0.0}
