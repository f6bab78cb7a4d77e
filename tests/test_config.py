"""StackConfig: precedence, validation messages, worker groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from stalk.embedded import ConfigError, load_config
from stalk.embedded.config import find_redis_server


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stalk.toml"
    path.write_text(text)
    return path


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    file = write(tmp_path, 'app = "file.mod:app"\n[broker]\nmode = "embedded"\nappendfsync = "always"\nport = 7000\n')
    env = {"STALK_APP": "env.mod:app", "STALK_BROKER_PORT": "7001"}
    config = load_config({"app": "flag.mod:app"}, file, env)
    assert config.app == "flag.mod:app"
    assert config.broker.port == 7001
    assert config.broker.appendfsync == "always"
    assert config.broker.mode == "embedded"
    assert config.beat_enabled() is True
    assert config.source == str(file)


def test_celery_broker_url_env_means_external(tmp_path):
    config = load_config({"data_dir": str(tmp_path)}, environ={"CELERY_BROKER_URL": "redis://127.0.0.1:6379/3"})
    assert config.broker.url == "redis://127.0.0.1:6379/3"
    assert config.resolved_mode() == "external"


def test_workers_table(tmp_path):
    file = write(tmp_path, """
[[workers]]
name = "media"
queues = ["youtube", "webpage"]
concurrency = 4
pool = "threads"
autoscale = "8, 2"
max_tasks_per_child = 50
""")
    (worker,) = load_config(config_file=file, environ={}).workers
    assert worker.queues == ("youtube", "webpage")
    assert (worker.concurrency, worker.pool, worker.autoscale, worker.max_tasks_per_child) == (4, "threads", "8,2", 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[broker]\nmode = "rabbit"\n', "broker.mode = 'rabbit': expected one of auto, redis, embedded, eager, external"),
        ('[broker]\nport = 70000\n', "broker.port = 70000: expected a whole number from 0 to 65535"),
        ('[broker]\nappendfsync = "sometimes"\n', "broker.appendfsync = 'sometimes': expected one of always"),
        ('[[workers]]\nname = "a"\npool = "gevent"\n', "workers[0].pool = 'gevent': expected one of prefork, threads, solo"),
        ('[[workers]]\nname = "a"\nconcurrency = 0\n', "workers[0].concurrency = 0: expected a whole number from 1"),
        ('[[workers]]\nname = "a"\nautoscale = "lots"\n', "workers[0].autoscale = 'lots': expected \"max,min\""),
        ('[[workers]]\nname = "a"\n[[workers]]\nname = "a"\n', "workers.name = 'a': worker names must be unique"),
        ('colour = "red"\n', "unknown key colour"),
        ('[broker]\nurl = "http://x"\n', "broker.url = 'http://x': expected a redis://"),
        ('app = "not a module"\n', "app = 'not a module': expected \"package.module\""),
        ('beat = "maybe"\n', "beat = 'maybe': expected true or false"),
        ("broker = [", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_allowed(tmp_path, text, expected):
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(config_file=file, environ={})
    message = str(info.value)
    assert message.startswith(str(file))
    assert expected in message
    assert "\n" not in message


def test_bad_env_value_names_environment():
    with pytest.raises(ConfigError, match=r"^environment: broker.port = 'abc': expected a whole number"):
        load_config(environ={"STALK_BROKER_PORT": "abc"})


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(config_file=tmp_path / "nope.toml", environ={})


def test_auto_mode_without_redis_server_is_embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() is None
    assert load_config(environ={}).resolved_mode() == "embedded"


def test_events_enable_remote_from_file_and_environment(tmp_path):
    """Asking workers for task events (enable_events) is on unless stalk.toml or STALK_ENABLE_EVENTS says no."""
    assert load_config({"data_dir": str(tmp_path)}, environ={"STALK_CONFIG": ""}).events.enable_remote is True
    file = write(tmp_path, "[events]\nenable_remote = false\n")
    assert load_config(None, file, {}).events.enable_remote is False
    assert load_config(None, file, {"STALK_ENABLE_EVENTS": "1"}).events.enable_remote is True
    assert load_config(None, None, {"STALK_CONFIG": "", "STALK_ENABLE_EVENTS": "off"}).events.enable_remote is False
    with pytest.raises(ConfigError, match=r"environment: events.enable_remote = 'maybe': expected true or false"):
        load_config(None, None, {"STALK_CONFIG": "", "STALK_ENABLE_EVENTS": "maybe"})
    with pytest.raises(ConfigError, match=r"unknown key events.enable: expected one of enable_remote"):
        load_config(None, write(tmp_path, "[events]\nenable = false\n"), {})
