"""Stalk's own broker on a Unix socket in the 0700 data dir, an ACL user that cannot administer redis, and,
where the user asks for TCP, clients that send the password only to the redis-server Stalk runs
(issue #26 findings 1, 2 and 6). Real redis-server, embedded server, workers and a second uid when root."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import redis

from stalk.embedded import ProcState

from .conftest import ROOT, broker_redis, clean_env, stalk_cmd, wait_until

pytestmark = pytest.mark.procs

NOBODY = 65534
OTHER_USER = {"user": NOBODY, "group": NOBODY} if os.geteuid() == 0 else {}  # a second uid where allowed
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""

# Binds the port (SO_REUSEADDR, as a squatter would) as soon as it is free, accepts for a while and prints,
# in hex, everything its clients sent.
SQUAT = """
import json, socket, sys, threading, time
port, window = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
deadline = time.monotonic() + 20
while True:
    try:
        srv.bind(("127.0.0.1", port))
        break
    except OSError:
        if time.monotonic() > deadline:
            print(json.dumps({"bound": False})); sys.exit(0)
        time.sleep(0.005)
srv.listen(64)
print("bound", flush=True)
got, conns = [], [0]
def serve(c):
    c.settimeout(window)
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            got.append(data.hex())
    except OSError:
        pass
srv.settimeout(0.2)
end = time.monotonic() + window
while time.monotonic() < end:
    try:
        c, _ = srv.accept()
    except OSError:
        continue
    conns[0] += 1
    threading.Thread(target=serve, args=(c,), daemon=True).start()
time.sleep(0.5)
print(json.dumps({"bound": True, "connections": conns[0], "data": got}), flush=True)
"""


def _listening_inet(pid: int) -> list:
    return [c for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]


def _as_other_user(*args: str) -> str:
    proc = subprocess.run([SYSTEM_PYTHON, *args], capture_output=True, text=True, timeout=30, **OTHER_USER)
    return proc.stdout.strip() or proc.stderr.strip()


@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_own_broker_listens_only_on_a_private_socket_in_the_data_dir(running_stack, mode):
    # the Flower-compatible API (a loopback TCP port of its own, on purpose) is off: this is about the broker
    stack = running_stack(broker={"mode": mode}, beat=False, workers=[], flower={"enabled": False})
    info = stack.broker
    assert info.broker_url.startswith("redis+socket://") and info.port is None
    sock = Path(info.socket)
    assert sock.parent == stack.paths.state and stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700 and sock.stat().st_mode & 0o077 == 0
    assert _listening_inet(info.pid if mode == "redis" else os.getpid()) == []  # no TCP listener at all
    assert broker_redis(info.broker_url).ping()
    if OTHER_USER:
        assert _as_other_user("-c", CONNECT, str(sock)) == "PermissionError"


def test_password_holder_cannot_reconfigure_replicate_or_stop_redis(running_stack):
    stack = running_stack(broker={"mode": "redis"}, beat=False, workers=[])
    conf = stack.paths.state / "redis.conf"
    before = conf.read_bytes()
    client = broker_redis(stack.broker.broker_url)
    password = stack.paths.password_file.read_text().strip()
    refused = [
        ("CONFIG", "SET", "bind", "0.0.0.0"), ("CONFIG", "SET", "requirepass", ""), ("CONFIG", "REWRITE"),
        ("CONFIG", "GET", "*"), ("REPLICAOF", "127.0.0.1", "6379"), ("SLAVEOF", "127.0.0.1", "6379"),
        ("SHUTDOWN", "NOSAVE"), ("ACL", "SETUSER", "evil", "on", ">x", "+@all"), ("ACL", "LIST"),
        ("MONITOR",), ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST"), ("FLUSHALL",), ("CLIENT", "KILL", "TYPE", "normal"),
        ("MIGRATE", "127.0.0.1", "6379", "k", "0", "1000"), ("BGSAVE",),
    ]
    for command in refused:
        with pytest.raises(redis.ResponseError):
            client.execute_command(*command)
    with pytest.raises(redis.AuthenticationError):  # the default user is off: no other way in
        broker_redis(stack.broker.broker_url).execute_command("AUTH", "default", password)
    assert client.ping() and stack.process("broker").restarts == 0
    assert conf.read_bytes() == before and stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert _listening_inet(stack.broker.pid) == []


def test_tcp_port_squatter_gets_no_password_while_redis_restarts(running_stack):
    """broker.listen = "tcp": a process of another user that binds the port while Stalk's redis-server is
    down receives connections but never the password; once it leaves, the stack works again."""
    stack = running_stack(broker={"mode": "redis", "listen": "tcp"}, beat=False,
                          workers=[{"name": "default", "queues": ["default"], "concurrency": 1}],
                          supervisor={"backoff_initial": 2.0})
    port, password = stack.broker.port, stack.paths.password_file.read_text().strip()
    assert stack.app.send_task("demo.add", (1, 1)).get(timeout=30) == 2
    os.kill(stack.broker.pid, signal.SIGKILL)
    squatter = subprocess.Popen([SYSTEM_PYTHON, "-c", SQUAT, str(port), "6"], stdout=subprocess.PIPE, text=True,
                                **OTHER_USER)
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "bound"
        sender = threading.Thread(target=lambda: _try_send(stack), daemon=True)
        sender.start()  # Stalk's own client reconnects too, as the worker does
        report = json.loads(squatter.communicate(timeout=60)[0])
    finally:
        squatter.kill()
        squatter.wait()
    received = b"".join(bytes.fromhex(chunk) for chunk in report["data"])
    assert report["connections"] >= 1, "no client reached the squatter: the test proves nothing"
    assert password.encode() not in received and b"AUTH" not in received.upper()
    wait_until(lambda: stack.process("broker").state is ProcState.RUNNING, timeout=90)
    assert stack.app.send_task("demo.add", (2, 3)).get(timeout=60) == 5


def _try_send(stack) -> None:
    try:
        stack.app.send_task("demo.add", (0, 0))
    except Exception:  # the broker is down: only the connection attempts matter here
        pass


def test_deep_data_dir_gets_a_private_socket_dir_removed_at_stop(config_factory, tmp_path):
    from stalk.embedded import Stack

    from .conftest import make_config

    deep = tmp_path / ("d" * 100) / "data"
    stack = Stack(make_config(deep, broker={"mode": "embedded"}, beat=False,
                              workers=[{"name": "default", "queues": ["default"], "concurrency": 1}]))
    stack.start(timeout=60)
    try:
        sock = Path(stack.broker.socket)
        assert len(os.fsencode(sock)) <= 107 and not sock.is_relative_to(deep)
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700 and sock.parent.stat().st_uid == os.getuid()
        assert (deep / "state" / "socket-dir").read_text().strip() == str(sock.parent)
        assert stack.app.send_task("demo.add", (2, 2)).get(timeout=30) == 4
    finally:
        stack.stop()
    assert not sock.parent.exists() and not (deep / "state" / "socket-dir").exists()


def test_round_trip_on_the_socket_worker_beat_cli_and_a_plain_celery_client(running_stack):
    stack = running_stack(broker={"mode": "redis"})
    assert stack.process("beat").state is ProcState.RUNNING
    dd = str(stack.paths.data_dir)
    run = {"cwd": ROOT, "env": clean_env(), "capture_output": True, "text": True, "timeout": 120}
    submitted = subprocess.run(stalk_cmd("submit", "demo.add", "--args", "[2, 3]", "--wait", "--data-dir", dd), **run)
    assert submitted.returncode == 0 and "result: 5" in submitted.stdout, submitted.stderr
    status = subprocess.run(stalk_cmd("status", "--data-dir", dd), **run).stdout
    assert f"(on {stack.broker.socket})" in status
    urls = json.loads(subprocess.run(stalk_cmd("env", "--json", "--data-dir", dd), **run).stdout)
    assert urls["CELERY_BROKER_URL"].startswith("redis+socket://")
    plain = ("import os, celery; app = celery.Celery(broker=os.environ['CELERY_BROKER_URL'], "
             "backend=os.environ['CELERY_RESULT_BACKEND']); "
             "print(app.send_task('demo.add', (20, 22), queue='default').get(timeout=60))")
    client = subprocess.run([sys.executable, "-c", plain], cwd="/", env=clean_env(**urls), capture_output=True,
                            text=True, timeout=120)
    assert client.stdout.strip() == "42", client.stderr


def test_transactions_in_the_aof_are_replayed_after_a_broker_kill(running_stack):
    """kombu writes its unacked table in MULTI/EXEC; redis-server checks a replayed EXEC's commands against
    the `default` user, which Stalk turns off: it must keep the clients' rules or the AOF loses them."""
    stack = running_stack(broker={"mode": "redis", "appendfsync": "always"}, beat=False, workers=[],
                          supervisor={"backoff_initial": 0.2})
    client = broker_redis(stack.broker.broker_url)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset("unacked-canary", "tag", "message").zadd("unacked-index-canary", {"tag": 1.0}).execute()
    os.kill(stack.broker.pid, signal.SIGKILL)
    wait_until(lambda: stack.process("broker").restarts == 1)
    wait_until(lambda: stack.process("broker").state is ProcState.RUNNING)
    assert client.hget("unacked-canary", "tag") == b"message"
    assert client.zscore("unacked-index-canary", "tag") == 1.0
