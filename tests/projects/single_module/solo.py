from celery import Celery

app = Celery("solo")
app.conf.imports = ("solo_extra",)


@app.task(name="solo.add")
def add(x: int, y: int) -> int:
    return x + y
