"""Stalk's revoke store (no processes): persistence, permissions, corruption, worker-state loading."""

from __future__ import annotations

import json
import stat
import threading

import pytest
from celery.worker import state

from stalk.embedded.control import (
    ControlError,
    RevokeStore,
    load_into_worker_state,
    revoke_store_path,
    signal_name,
)


def test_store_persists_with_mode_0600(tmp_path):
    store = RevokeStore(revoke_store_path(tmp_path))
    store.add(["a", "b"], terminate=True, signal="SIGKILL")
    store.add(["c"])
    again = RevokeStore(revoke_store_path(tmp_path))
    assert again.ids() == ["a", "b", "c"]
    assert [(e.terminate, e.signal) for e in again.entries()] == [(True, "SIGKILL"), (True, "SIGKILL"),
                                                                    (False, "SIGTERM")]
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "b" in again
    again.discard(["b"])
    assert store.ids() == ["a", "c"]


def test_entry_reads_the_file_again_only_when_it_changed(tmp_path):
    store = RevokeStore(revoke_store_path(tmp_path))
    assert store.entry("a") is None  # no file yet
    store.add(["a"])
    assert store.entry("a").task_id == "a" and store.entry("zzz") is None
    RevokeStore(store.path).add(["b"], terminate=True, signal="SIGKILL")  # another process writes
    assert (store.entry("b").terminate, store.entry("b").signal) == (True, "SIGKILL")
    parsed = store._by_id
    assert store.entry("a") is not None and store._by_id is parsed  # unchanged file: not parsed again
    store.discard(["a"])
    assert store.entry("a") is None


def test_corrupt_store_reads_empty_and_is_replaced(tmp_path):
    path = revoke_store_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    store = RevokeStore(path)
    assert store.ids() == []
    store.add(["x"])
    assert json.loads(path.read_text())["revoked"][0]["task_id"] == "x"


def test_concurrent_writers_lose_nothing(tmp_path):
    store = RevokeStore(revoke_store_path(tmp_path))
    threads = [threading.Thread(target=store.add, args=([f"t{i}"],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.ids()) == sorted(f"t{i}" for i in range(20))


def test_loads_into_celery_worker_state(tmp_path):
    RevokeStore(revoke_store_path(tmp_path)).add(["revoked-before-start"])
    assert load_into_worker_state(str(tmp_path)) == 1
    try:
        assert "revoked-before-start" in state.revoked
    finally:
        state.revoked.discard("revoked-before-start")
    assert load_into_worker_state(None) == 0


@pytest.mark.parametrize(("given", "name"), [("TERM", "SIGTERM"), ("sigkill", "SIGKILL"), (9, "SIGKILL"),
                                             ("SIGUSR1", "SIGUSR1")])
def test_signal_names(given, name):
    assert signal_name(given) == name


def test_bad_signal_is_one_clear_error():
    with pytest.raises(ControlError, match="not a signal name"):
        signal_name("SIGNOPE")


class Snapshot:
    def __init__(self, hostname: str, state: str, role: str = "worker") -> None:
        self.hostname, self.state, self.role = hostname, state, role


def test_stored_revokes_are_rebroadcast_to_each_worker_turning_ready(tmp_path, monkeypatch):
    from stalk.embedded.control import Control
    from stalk.embedded.demo.app import app

    control = Control(app, revokes=RevokeStore(revoke_store_path(tmp_path)))
    control.revokes.add(["t1"])
    sent: list[list[str]] = []
    done = threading.Event()
    monkeypatch.setattr(control, "reapply_revokes", lambda dest: (sent.append(dest), done.set()))
    listeners = []
    control.watch_workers(lambda cb: listeners.append(cb) or (lambda: listeners.clear()))
    (on_change,) = listeners
    on_change([Snapshot("a@h", "starting"), Snapshot("b@h", "ready"), Snapshot(None, "running", "broker")])
    assert done.wait(5) and sent == [["b@h"]]
    done.clear()
    on_change([Snapshot("a@h", "ready"), Snapshot("b@h", "ready")])  # a comes up; b stays up
    assert done.wait(5) and sent == [["b@h"], ["a@h"]]
    done.clear()
    on_change([Snapshot("a@h", "ready"), Snapshot("b@h", "stopped")])
    on_change([Snapshot("a@h", "ready"), Snapshot("b@h", "ready")])  # b back online
    assert done.wait(5) and sent[-1] == ["b@h"]
    control.close()
    assert listeners == []
