"""A user's app for the soak: tasks in `include=`, two routed queues, a beat entry."""

from celery import Celery

app = Celery("soakproj", include=["soakproj.tasks"])
app.conf.task_routes = {
    "soakproj.tasks.fetch": {"queue": "fetch"},
    "soakproj.tasks.render": {"queue": "render"},
}
app.conf.beat_schedule = {"tick": {"task": "soakproj.tasks.tick", "schedule": 5.0}}
