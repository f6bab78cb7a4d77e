from solo import app


@app.task(name="solo.scale")
def scale(values: list, factor: float = 2.0) -> list:
    return [v * factor for v in values]
