"""`stalk worker` / `stalk beat`: the code a child runs, and the argv that re-invokes Stalk for it."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from stalk.embedded.celery_app import configure_app, load_app
from stalk.embedded.config import WorkerSpec
from stalk.embedded.paths import StackPaths
from stalk.embedded.supervisor.guard import install_watchdog

BROKER_ENV = "STALK_CHILD_BROKER_URL"
BACKEND_ENV = "STALK_CHILD_BACKEND_URL"
VISIBILITY_ENV = "STALK_CHILD_VISIBILITY_TIMEOUT"
DATA_DIR_ENV = "STALK_CHILD_DATA_DIR"  # the stack's data dir: quota ledger, revokes, archive


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
              data_dir: str) -> dict[str, str]:
    """Secrets travel in the environment (readable only by the user), never in argv."""
    env = {VISIBILITY_ENV: str(visibility_timeout), "PYTHONUNBUFFERED": "1",
           "PYINSTALLER_RESET_ENVIRONMENT": "1", DATA_DIR_ENV: data_dir}
    if broker_url:
        env[BROKER_ENV] = broker_url
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

    after_setup_logger.connect(quiet_per_task_logs, weak=False)
    install_progress_events()  # update_state(state="PROGRESS") also sends a task-progress event
    app = _prepared_app(app_spec)
    from stalk.embedded.control.revokes import load_into_worker_state
    from stalk.embedded.patches import batch_task_events

    batch_task_events(app)

    load_into_worker_state(child_data_dir())  # revokes made while this worker was down (celery#8888)
    from stalk.embedded.worker_statedb import set_aside_if_unreadable, statedb_arg

    if statedb := statedb_arg(celery_args):
        set_aside_if_unreadable(statedb)  # a damaged --statedb would crash the worker at every restart
    app.worker_main(["worker", *celery_args])


def run_beat(app_spec: str | None, celery_args: list[str]) -> None:
    """Run celery beat in this process; under a Stalk, every send is recorded in its data dir as it
    happens (beat's own schedule file lags by minutes): embedded/control/beat_runs.py."""
    app = _prepared_app(app_spec)
    if data_dir := child_data_dir():
        from stalk.embedded.control.beat_runs import BeatRuns, record_beat_sends

        record_beat_sends(BeatRuns(StackPaths(Path(data_dir)).beat_runs))
    app.start(["beat", *celery_args])
