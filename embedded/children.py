"""`stalk worker` / `stalk beat`: the code a child runs, and the argv that re-invokes Stalk for it."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from stalk.embedded.celery_app import configure_app, load_app
from stalk.embedded.config import WorkerSpec
from stalk.embedded.patches import guard_port
from stalk.embedded.paths import StackPaths
from stalk.embedded.supervisor.guard import install_watchdog

BROKER_ENV = "STALK_CHILD_BROKER_URL"
BACKEND_ENV = "STALK_CHILD_BACKEND_URL"
VISIBILITY_ENV = "STALK_CHILD_VISIBILITY_TIMEOUT"
PIDFILE_ENV = "STALK_CHILD_BROKER_PIDFILE"  # Stalk's redis-server on TCP: connect only to that process
DATA_DIR_ENV = "STALK_CHILD_DATA_DIR"  # the stack's data dir: quota ledger, revokes, archive
RELIABLE_ENV = "STALK_CHILD_RELIABLE_CONSUME"  # "1": consume with patches/kombu_redis_reliable.py
UMASK_ENV = "STALK_CHILD_TASK_UMASK"  # the user's umask (octal), for the tasks: Stalk's own files use 077


def self_argv() -> list[str]:
    """How to run Stalk again: the frozen binary itself, or this interpreter with `-P -m stalk`.

    -P keeps the current directory off the front of sys.path while Stalk imports itself, so nothing in
    the user's project (a `stalk/`, `celery/` or `click/` folder) can stand in for Stalk's own modules;
    load_app() then puts the directory back for the user's app, as `celery -A` does."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-P", "-m", "stalk"]


def node_name(spec: WorkerSpec) -> str:
    return f"{spec.name}@{socket.gethostname()}"


def worker_argv(app_spec: str | None, spec: WorkerSpec, paths: StackPaths) -> list[str]:
    argv = [*self_argv(), "worker"]
    if app_spec:
        argv += ["-A", app_spec]
    argv += [
        "--", "-n", node_name(spec), "-Q", ",".join(spec.queues), "-P", spec.pool,
        "-c", str(spec.concurrency), "-E", "-l", "INFO", "--without-gossip", "--without-mingle",
        "--statedb", str(paths.worker_statedb(spec.name)),
    ]
    if spec.autoscale:
        argv += ["--autoscale", spec.autoscale]
    if spec.max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(spec.max_tasks_per_child)]
    return argv


def beat_argv(app_spec: str | None, paths: StackPaths) -> list[str]:
    argv = [*self_argv(), "beat"]
    if app_spec:
        argv += ["-A", app_spec]
    return [*argv, "--", "-s", str(paths.beat_schedule), "-l", "INFO"]


def child_env(broker_url: str | None, backend_url: str | None, visibility_timeout: int,
              data_dir: str, reliable: bool = False, task_umask: int | None = None,
              broker_pidfile: str | None = None) -> dict[str, str]:
    """Secrets travel in the environment (readable only by the user), never in argv. `reliable`: the
    broker is Stalk's own redis, whose keyspace notifications the workers' reliable consume needs."""
    env = {VISIBILITY_ENV: str(visibility_timeout), "PYTHONUNBUFFERED": "1",
           "PYINSTALLER_RESET_ENVIRONMENT": "1", DATA_DIR_ENV: data_dir}
    if reliable:
        env[RELIABLE_ENV] = "1"
    if task_umask is not None:
        env[UMASK_ENV] = f"{task_umask:o}"
    if broker_url:
        env[BROKER_ENV] = broker_url
    if broker_pidfile:
        env[PIDFILE_ENV] = broker_pidfile
    if backend_url:
        env[BACKEND_ENV] = backend_url
    return env


def child_data_dir() -> str | None:
    """Inside a `stalk worker`/`stalk beat` child: the data dir of the Stalk that started it."""
    return os.environ.get(DATA_DIR_ENV)


def _prepared_app(app_spec: str | None):
    install_watchdog()
    app = load_app(app_spec)
    broker = os.environ.get(BROKER_ENV) or os.environ.get("CELERY_BROKER_URL") or app.conf.broker_url
    if os.environ.get(PIDFILE_ENV) and (port := urlsplit(str(broker)).port):
        guard_port(port, Path(os.environ[PIDFILE_ENV]))
    backend = os.environ.get(BACKEND_ENV) or os.environ.get("CELERY_RESULT_BACKEND") or app.conf.result_backend
    visibility = int(os.environ.get(VISIBILITY_ENV, "3600"))
    return configure_app(app, broker, backend, visibility_timeout=visibility)


def quiet_per_task_logs(**_kwargs: object) -> None:
    """Drop Celery's two INFO lines per task ("received", "succeeded in"): the event store already
    has them, and piping them through Stalk costs ~10% throughput. Warnings and errors still show."""
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_worker(app_spec: str | None, celery_args: list[str]) -> None:
    """Run a Celery worker in this process with Stalk's settings (events on, JSON, late acks)."""
    from celery.signals import after_setup_logger

    from stalk.embedded.events.progress import install_progress_events
    from stalk.embedded.log_folding import fold_worker_noise

    after_setup_logger.connect(quiet_per_task_logs, weak=False)
    fold_worker_noise()  # a broker outage's retries and restores: one line per kind, with the count
    install_progress_events()  # update_state(state="PROGRESS") also sends a task-progress event
    app = _prepared_app(app_spec)
    from stalk.embedded.control.revokes import load_into_worker_state
    from stalk.embedded.patches import batch_task_events, consume_reliably, quick_pool_shutdown

    batch_task_events(app)
    quick_pool_shutdown()
    from stalk.embedded.worker_wakeup import install as wake_at_signals

    wake_at_signals(app)
    tasks_get_the_user_umask()
    if os.environ.get(RELIABLE_ENV) == "1":  # Stalk's own redis: see patches/kombu_redis_reliable.py
        consume_reliably(app, _node_arg(celery_args))

    load_into_worker_state(child_data_dir())  # revokes made while this worker was down (celery#8888)
    from stalk.embedded.worker_statedb import set_aside_if_unreadable, statedb_arg

    if statedb := statedb_arg(celery_args):
        set_aside_if_unreadable(statedb)  # a damaged --statedb would crash the worker at every restart
    app.worker_main(["worker", *celery_args])


def tasks_get_the_user_umask() -> None:
    """Stalk runs with umask 077 (its statedb, logs, ...: embedded/safe_files.py), but a file a task writes
    gets the user's usual mode: the pool processes (prefork, where tasks run) switch back to the user's
    umask. A pool that runs tasks in the worker itself (solo, threads) keeps 077."""
    value = os.environ.get(UMASK_ENV)
    if not value:
        return
    from celery.signals import worker_process_init

    main, umask = os.getpid(), int(value, 8) & 0o777

    def restore(**_kwargs: object) -> None:
        if os.getpid() != main:
            os.umask(umask)

    worker_process_init.connect(restore, weak=False)


def _node_arg(celery_args: list[str]) -> str | None:
    """The worker's `-n` node name, as Stalk passes it (worker_argv)."""
    for flag, value in zip(celery_args, celery_args[1:], strict=False):
        if flag in ("-n", "--hostname"):
            return value
    return None


def run_beat(app_spec: str | None, celery_args: list[str]) -> None:
    """Run celery beat in this process; under a Stalk, every send is recorded in its data dir as it
    happens (beat's own schedule file lags by minutes): embedded/control/beat_runs.py."""
    app = _prepared_app(app_spec)
    if data_dir := child_data_dir():
        from stalk.embedded.control.beat_runs import BeatRuns, record_beat_sends

        record_beat_sends(BeatRuns(StackPaths(Path(data_dir)).beat_runs))
    app.start(["beat", *celery_args])
