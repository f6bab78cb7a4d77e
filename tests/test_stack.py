"""The stack runtime against real processes: redis-server, the embedded server, `stalk worker` children."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest
import redis

from stalk.embedded import BrokerError, ProcState, Stack, StackLockedError
from stalk.embedded.net import free_port

from .conftest import ROOT, broker_redis, clean_env, make_config, stalk_cmd, wait_until

pytestmark = pytest.mark.procs



@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_task_runs_end_to_end(running_stack, mode):
    stack = running_stack(broker={"mode": mode}, beat=False)
    assert stack.broker.mode == mode
    assert {p.name for p in stack.processes() if p.state is ProcState.READY} == {"worker:default", "worker:slow"}
    assert stack.app.send_task("demo.add", (2, 3)).get(timeout=20) == 5
    assert stack.app.send_task("demo.slow_add", (1, 1), {"seconds": 0.2}).get(timeout=20) == 2


def test_eager_mode_runs_tasks_in_process(running_stack):
    stack = running_stack(broker={"mode": "eager"})
    assert stack.processes() == []
    assert stack.app.tasks["demo.add"].delay(4, 5).get(timeout=5) == 9


def test_beat_runs(running_stack):
    stack = running_stack(broker={"mode": "embedded"})
    assert stack.process("beat").state is ProcState.RUNNING


def test_own_redis_is_loopback_with_password_aof_and_0600_secret(running_stack):
    stack = running_stack(broker={"mode": "redis", "appendfsync": "always", "listen": "tcp"}, beat=False)
    port = stack.broker.port
    assert port != 6379
    password_file = stack.paths.password_file
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    client = broker_redis(stack.broker.broker_url)
    assert client.ping()
    conf = (stack.paths.state / "redis.conf").read_text().splitlines()  # CONFIG is disabled for clients
    assert {"appendonly yes", "appendfsync always", "maxmemory-policy noeviction", "bind 127.0.0.1"} <= set(conf)
    assert "AOF always" in stack.broker.durability
    assert "password" not in " ".join(psutil.Process(stack.broker.pid).cmdline())


def test_embedded_server_requires_password(running_stack):
    stack = running_stack(broker={"mode": "embedded"}, beat=False)
    with pytest.raises(redis.AuthenticationError, match="(?i)auth"):  # NOAUTH, as redis-server says
        redis.Redis(unix_socket_path=stack.broker.socket).set("k", "v")


def test_killed_worker_is_restarted_and_ready_again(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False, supervisor={"backoff_initial": 0.2})
    old_pid = stack.process("worker:default").pid
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: stack.process("worker:default").restarts == 1)
    wait_until(lambda: stack.process("worker:default").state is ProcState.READY, timeout=60)
    assert stack.process("worker:default").pid != old_pid
    assert stack.app.send_task("demo.add", (1, 2)).get(timeout=20) == 3


def test_killed_broker_restarts_and_keeps_aof_data(running_stack):
    stack = running_stack(broker={"mode": "redis", "appendfsync": "always"}, beat=False,
                          supervisor={"backoff_initial": 0.2})
    client = broker_redis(stack.broker.broker_url)
    client.set("stalk-test-key", "kept")
    os.kill(stack.broker.pid, signal.SIGKILL)
    wait_until(lambda: stack.process("broker").restarts == 1)
    wait_until(lambda: stack.process("broker").state is ProcState.RUNNING)
    assert client.get("stalk-test-key") == b"kept"
    assert stack.app.send_task("demo.add", (2, 2)).get(timeout=30) == 4


def test_stop_leaves_no_process(config_factory):
    stack = Stack(config_factory(broker={"mode": "redis"})).start(timeout=60)
    pids = [p.pid for p in stack.processes()]
    stack.stop()
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_busy_port_is_a_clear_error(config_factory):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for mode in ("redis", "embedded"):
            with pytest.raises(BrokerError, match=f"broker port {port} on 127.0.0.1 is already in use"):
                Stack(config_factory(broker={"mode": mode, "port": port})).start()


def test_missing_redis_binary_is_a_clear_error(config_factory, tmp_path):
    with pytest.raises(BrokerError, match="no such redis-server binary"):
        Stack(config_factory(broker={"mode": "redis", "redis_server": str(tmp_path / "nope")})).start()


def test_second_instance_on_same_data_dir_says_so(running_stack, config_factory):
    running_stack(broker={"mode": "eager"})
    with pytest.raises(StackLockedError, match=rf"another Stalk \(pid {os.getpid()}\) is already running"):
        Stack(config_factory(broker={"mode": "eager"})).start()


def test_external_mode_attaches_to_running_redis(running_stack, config_factory):
    own = running_stack(broker={"mode": "redis"}, beat=False)
    url = own.broker.broker_url
    external = Stack(make_config(own.paths.data_dir.parent / "ext", broker={"url": url}))
    external.start()
    try:
        assert external.mode == "external"
        assert external.processes() == []
        assert external.app.send_task("demo.add", (5, 5)).get(timeout=20) == 10
    finally:
        external.stop()


def test_external_mode_unreachable_is_clear(config_factory):
    port = free_port()
    with pytest.raises(BrokerError, match=f"cannot reach broker redis://127.0.0.1:{port}/0"):
        Stack(config_factory(broker={"url": f"redis://127.0.0.1:{port}/0"})).start()


def _stalk_up(tmp_path, *args, env=None):
    return subprocess.Popen(stalk_cmd("up", "--data-dir", str(tmp_path / "data"), *args), cwd=ROOT,
                            env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(proc, marker: str, timeout: float = 60) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; got:\n{''.join(seen)}")


def test_sigkill_of_stalk_leaves_no_child_and_next_start_recovers(tmp_path):
    proc = _stalk_up(tmp_path, "--broker", "redis")
    _read_until(proc, "stack is up")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 4  # broker, two workers with pool children, beat
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [c.pid for c in alive]
    again = _stalk_up(tmp_path, "--broker", "redis")
    try:
        _read_until(again, "stack is up")
    finally:
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=60)
    assert again.returncode == 0


def test_stale_children_of_a_crashed_run_are_killed_at_start(tmp_path, config_factory):
    """A child that outlived its Stalk (pid file left behind) is ended by the next start."""
    config = config_factory(broker={"mode": "eager"})
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    from stalk.embedded.supervisor.registry import ChildRegistry

    config.paths.ensure()
    ChildRegistry(config.paths.children_file).add("worker:default", stray.pid)
    stack = Stack(config).start()
    try:
        assert stack.stale_killed == [stray.pid]
        assert stray.wait(timeout=5) == -signal.SIGKILL
    finally:
        stack.stop()


def test_up_and_status_cli_on_a_path_without_redis(tmp_path):
    """A fresh machine: no redis-server anywhere, so the default is the embedded broker."""
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    env = clean_env(PATH=str(bare))
    proc = _stalk_up(tmp_path, "--no-beat", env=env)
    try:
        out = _read_until(proc, "stack is up")
        assert "embedded broker" in out
        status = subprocess.run(stalk_cmd("status", "--data-dir", str(tmp_path / "data")), env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        assert "broker: embedded" in status.stdout
        assert "worker:default" in status.stdout and "ready" in status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_cli_bad_config_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[broker]\nmode = "rabbit"\n')
    result = subprocess.run(stalk_cmd("up", "--config", str(bad)), env=clean_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"stalk: error: {bad}: broker.mode = 'rabbit': expected one of auto, redis, embedded, eager, external"
    ]
