"""/demo/load: the demo's task mix sent by the stack process itself (`stalk demo --ui` asks for it), only
on the demo app; and the panel's RemoteLoad on it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from celery import Celery

from stalk.embedded import Stack
from stalk.embedded.service import ApiError
from stalk.panel.runtime import DemoLoad, RemoteLoad

from .api_support import client_of
from .conftest import make_config, wait_until

pytestmark = pytest.mark.procs


def test_the_stack_sends_the_demo_load_and_stops_it(tmp_path: Path) -> None:
    with Stack(make_config(tmp_path / "data", broker={"mode": "embedded"}, beat=False)) as stack:
        client = client_of(stack)
        with pytest.raises(ApiError) as none:
            client.get("/demo/load")
        assert none.value.status == 404
        with pytest.raises(ApiError) as bad:
            client.post("/demo/load", {"rate": 0})
        assert bad.value.status in (400, 422)
        load = RemoteLoad.start(client, DemoLoad(rate=20, duration=None, seed=3))
        assert wait_until(lambda: load.snapshot()["submitted"] >= 5, 20)
        assert load.snapshot()["running"] is True and load.snapshot()["errors"] == 0
        load.stop()
        stopped = load.snapshot()
        assert stopped["running"] is False
        time.sleep(0.5)
        assert load.snapshot()["submitted"] == stopped["submitted"]  # nothing more goes out
        again = client.post("/demo/load", {"rate": 50, "duration": 0.5, "seed": 1})
        assert again["running"] is True and again["duration"] == 0.5
        assert wait_until(lambda: client.get("/demo/load")["running"] is False, 10)
        client.post("/demo/load", {"rate": 5})  # left running: it stops with the stack
        client.close()
    assert not [t for t in threading.enumerate() if t.name == "stalk-demo-load" and t.is_alive()]


def test_no_demo_load_on_another_app(tmp_path: Path) -> None:
    app = Celery("not-the-demo", set_as_current=False)
    config = make_config(tmp_path / "data", app="someone.else:app", broker={"mode": "eager"}, beat=False)
    with Stack(config, app=app) as stack:
        client = client_of(stack)
        with pytest.raises(ApiError) as err:
            client.post("/demo/load", {"rate": 1})
        assert err.value.status == 409 and "not the demo app" in err.value.message
        client.close()
