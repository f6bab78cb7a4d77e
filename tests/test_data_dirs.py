"""The default data dir is per app (and per external broker): `<base>/apps/<slug>-<hash>`, the demo's
`<base>/apps/demo`; an explicit data dir wins; the demo keeps the old single default dir when it holds
the demo's history."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from stalk.embedded import DEMO_APP, load_config
from stalk.embedded.paths import broker_target

APP = "proj.celery:app"


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The platform's user data dir for Stalk, under tmp_path (XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    return tmp_path / "xdg" / "stalk"


def data_dir(monkeypatch: pytest.MonkeyPatch, cwd: Path, environ: dict | None = None, **flags) -> Path:
    monkeypatch.chdir(cwd)
    return load_config(flags, environ={"STALK_CONFIG": "", **(environ or {})}).paths.data_dir


def test_each_app_and_each_external_broker_has_its_own_default_data_dir(base, tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    demo = data_dir(monkeypatch, one)
    assert demo == base / "apps" / "demo" == data_dir(monkeypatch, two) == data_dir(monkeypatch, one, app=DEMO_APP)
    proj = data_dir(monkeypatch, one, app=APP)
    assert proj.parent == base / "apps" and proj.name.startswith("proj.celery-app-")
    assert data_dir(monkeypatch, one, app=APP) == proj
    assert data_dir(monkeypatch, two, app=APP) not in (proj, demo)  # another project, the same spec
    assert data_dir(monkeypatch, one, app="proj.other:app") != proj

    # attached to a broker: one per broker target (host:port/db or vhost); its password is not part of it
    redis1 = data_dir(monkeypatch, one, app=APP, broker={"url": "redis://:s3cret@cache.example:6379/1"})
    assert redis1.parent == base / "apps" and redis1 != proj and "s3cret" not in str(redis1)
    assert "cache.example" in redis1.name
    assert data_dir(monkeypatch, one, app=APP, broker={"url": "redis://:other@cache.example:6379/1"}) == redis1
    assert data_dir(monkeypatch, one, environ={"CELERY_BROKER_URL": "redis://cache.example/1"}, app=APP) == redis1
    assert data_dir(monkeypatch, one, app=APP, broker={"url": "redis://cache.example:6379/2"}) != redis1
    rabbit = data_dir(monkeypatch, one, broker={"url": "amqp://guest:guest@mq.example//"})
    assert rabbit.parent == base / "apps" and rabbit.name.startswith("demo@") and rabbit != demo
    assert data_dir(monkeypatch, one, broker={"url": "pyamqp://mq.example:5672//"}) == rabbit
    assert data_dir(monkeypatch, one, broker={"url": "amqp://mq.example/staging"}) != rabbit
    # a broker URL with the mode forced to Stalk's own broker is not a target
    assert data_dir(monkeypatch, one, app=APP, broker={"mode": "redis", "url": "redis://x/1"}) == proj


def test_an_explicit_data_dir_wins(base, tmp_path, monkeypatch):
    one = tmp_path / "one"
    assert data_dir(monkeypatch, one, app=APP, data_dir=str(tmp_path / "mine")) == tmp_path / "mine"
    assert data_dir(monkeypatch, one, {"STALK_DATA_DIR": str(tmp_path / "env")}, app=APP) == tmp_path / "env"
    toml = tmp_path / "stalk.toml"
    toml.write_text(f'data_dir = "{tmp_path / "file"}"\n')
    monkeypatch.chdir(one)
    assert load_config({"app": APP}, toml, environ={}).paths.data_dir == tmp_path / "file"


def _old_history(base: Path, name: str) -> None:
    (base / "state").mkdir(parents=True)
    with sqlite3.connect(base / "state" / "history.sqlite3") as conn:
        conn.execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO tasks VALUES ('id-1', ?)", (name,))
    conn.close()


def test_the_demo_keeps_the_old_default_dir_when_it_holds_the_demos_history(base, tmp_path, monkeypatch):
    _old_history(base, "demo.add")
    one = tmp_path / "one"
    assert data_dir(monkeypatch, one) == base  # the old single default dir: its history is the demo's
    assert data_dir(monkeypatch, one, app=APP).parent == base / "apps"  # never a user's app
    (base / "apps" / "demo").mkdir(parents=True)  # once the demo has its own dir, it keeps to it
    assert data_dir(monkeypatch, one) == base / "apps" / "demo"


def test_an_old_default_dir_without_demo_history_is_left_alone(base, tmp_path, monkeypatch):
    _old_history(base, "proj.tasks.import_csv")
    assert data_dir(monkeypatch, tmp_path / "one") == base / "apps" / "demo"


def _publish(data_dir: Path, app: str, broker_url: str | None, app_dir: Path | None = None) -> None:
    """A status file as a running Stalk (this process: a live pid) writes it."""
    from stalk.embedded import BrokerInfo
    from stalk.embedded.paths import StackPaths
    from stalk.embedded.status_file import write_status

    state = StackPaths(data_dir).state
    state.mkdir(parents=True)
    write_status(state, BrokerInfo("redis", broker_url, None, "aof"), [], app, app_dir)


def test_a_command_without_app_or_data_dir_finds_the_running_stack(base, tmp_path, monkeypatch):
    from stalk.embedded import ConfigError, locate_stack

    monkeypatch.chdir(tmp_path / "one")
    env = {"STALK_CONFIG": ""}
    bare = load_config({}, environ=env)
    assert locate_stack(bare) == (bare, None)  # none running: the demo's default, as before
    proj_dir = base / "apps" / "proj.celery-app-0123456789"
    _publish(proj_dir, APP, "redis://:pw@127.0.0.1:7001/0", tmp_path / "two")
    config, found = locate_stack(bare)
    assert found is not None and (found.data_dir, found.app, found.pid) == (proj_dir, APP, os.getpid())
    assert (config.paths.data_dir, config.app, config.app_dir) == (proj_dir, APP, tmp_path / "two")
    explicit = load_config({"app": "other.mod:app"}, environ=env)
    assert locate_stack(explicit) == (explicit, None)  # -A: that app's own default data dir

    _publish(base / "apps" / "demo", DEMO_APP, "redis://:pw@127.0.0.1:7002/0")
    with pytest.raises(ConfigError) as info:
        locate_stack(bare)
    line = str(info.value)
    assert line.startswith("2 Stalk stacks are running: ") and "\n" not in line
    assert str(proj_dir) in line and str(base / "apps" / "demo") in line and "--data-dir" in line
    # a broker URL (CELERY_BROKER_URL after `eval "$(stalk env)"`) picks the stack on that broker
    on_7002 = load_config({}, environ={**env, "CELERY_BROKER_URL": "redis://:pw@127.0.0.1:7002/0"})
    config, found = locate_stack(on_7002)
    assert found is not None and config.paths.data_dir == base / "apps" / "demo" and config.app == DEMO_APP
    elsewhere = load_config({"broker": {"url": "redis://127.0.0.1:7003/0"}}, environ=env)
    assert locate_stack(elsewhere) == (elsewhere, None)


def test_a_plain_worker_on_a_running_stacks_broker_charges_its_ledger(base, tmp_path, monkeypatch):
    from celery import Celery

    from stalk.embedded.quota import ledger_path

    monkeypatch.delenv("STALK_CHILD_DATA_DIR", raising=False)
    proj_dir = base / "apps" / "proj.celery-app-0123456789"
    _publish(proj_dir, APP, "redis://:pw@127.0.0.1:7011/0", tmp_path)
    plain = Celery("proj", broker="redis://:pw@localhost:7011", set_as_current=False)
    assert ledger_path(plain) == proj_dir / "state" / "quota.sqlite3"
    other = Celery("proj", broker="redis://127.0.0.1:7012/0", set_as_current=False)
    assert ledger_path(other) == base / "state" / "quota.sqlite3"


def test_a_socket_brokers_target_is_its_path_and_db_without_credentials():
    sock = "redis+socket://stalk:{}@/run/a/broker.sock?virtual_host={}"
    assert broker_target(sock.format("pw", 0)) == broker_target(sock.format("other", 0))
    assert broker_target(sock.format("pw", 0)) != broker_target(sock.format("pw", 1))
    assert broker_target(sock.format("pw", 1)) != broker_target(sock.format("pw", 1).replace("/a/", "/b/"))
