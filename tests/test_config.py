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
        ('[broker]\nlisten = "udp"\n', "broker.listen = 'udp': expected one of unix, tcp"),
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


NESTED = "a = " + "[" * 5000 + "]" * 5000 + "\n"
BAD_FILES = [  # (file bytes, the one line's end)
    (b"[supervisor]\nbackoff_initial = nan\n", "supervisor.backoff_initial = nan: expected a finite number of at least 0"),
    (b"[supervisor]\nready_timeout = inf\n", "supervisor.ready_timeout = inf: expected a finite number"),
    (b"[supervisor]\ngrace_period = -inf\n", "supervisor.grace_period = -inf: expected a finite number"),
    (b'app = "caf\xe9.mod"\n', "not valid TOML: not UTF-8 text (byte 10)"),
    (NESTED.encode(), "not valid TOML: nested too deeply"),
    (b'data_dir = "~no-such-user-stalk/x"\n', "data_dir = '~no-such-user-stalk/x': no home directory for ~no-such-user-stalk"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES, ids=["nan", "inf", "-inf", "latin1", "nested", "nouser"])
def test_what_tomllib_or_python_would_raise_on_is_one_line(tmp_path, content, expected):
    """nan/inf passed (a killed worker backed off forever); the rest were tracebacks."""
    file = tmp_path / "stalk.toml"
    file.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(config_file=file, environ={})
    message = str(info.value)
    assert message.startswith(str(file)) and expected in message and "\n" not in message, message


def test_non_finite_numbers_from_the_environment_are_refused():
    with pytest.raises(ConfigError, match=r"^environment: broker.port = 'nan': expected a whole number"):
        load_config(environ={"STALK_BROKER_PORT": "nan"})
    with pytest.raises(ConfigError, match=r"^command line: data_dir = '~no-such-user-stalk': no home directory"):
        load_config({"data_dir": "~no-such-user-stalk"}, environ={"STALK_CONFIG": ""})


def test_broker_listen_and_socket_urls(tmp_path):
    file = write(tmp_path, '[broker]\nlisten = "tcp"\nurl = "redis+socket://u:p@/tmp/r.sock"\n')
    config = load_config(config_file=file, environ={})
    assert (config.broker.listen, config.broker.url) == ("tcp", "redis+socket://u:p@/tmp/r.sock")
    assert load_config({"data_dir": str(tmp_path)}, environ={"STALK_CONFIG": ""}).broker.listen == "unix"
