from celery import Celery

app = Celery("maps", include=["maps.tasks"])
# 1,000 units a day for normal calls, 100 more for priority ones; a geocode call costs 51.
app.conf.stalk_quotas = {"geo": {"daily_limit": 1_100, "priority_reserve": 100, "costs": {"geocode": 51}}}
