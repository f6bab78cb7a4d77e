from celery import Celery

app = Celery("proj", include=["proj.tasks", "proj.reports"])
app.conf.task_routes = {
    "proj.tasks.import_csv": {"queue": "imports"},
    "proj.tasks.resize_image": {"queue": "media"},
    "proj.reports.*": {"queue": "reports"},
}
app.conf.beat_schedule = {"health-check": {"task": "proj.tasks.health", "schedule": 3.0}}
