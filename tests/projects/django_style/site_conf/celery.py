from celery import Celery

app = Celery("site_conf")
app.conf.task_default_queue = "web"
app.conf.task_routes = {"mail.tasks.*": {"queue": "mail"}}
app.autodiscover_tasks(["billing", "mail"])
