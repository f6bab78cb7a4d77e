"""Alerts ([[alerts]] in stalk.toml): rules over a real stack's state fire on ok -> firing and resolve on
firing -> ok; each transition is kept in the state dir and POSTed to a real local HTTP receiver (JSON or
Slack's shape) through the webhooks' outbox, once, even when the receiver was down; the API, the CLI
and the metrics show them; a restart neither forgets nor re-sends a firing alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stalk.embedded import OWN_LOG, Stack
from stalk.embedded.alerts import engine
from stalk.embedded.alerts.measures import Round, TaskFailures
from stalk.embedded.config import AlertConfig, ConfigError, load_config
from stalk.embedded.events import EventStore
from stalk.embedded.quota import QuotaLedger, QuotaSpec
from tests.api_support import client_of
from tests.conftest import clean_env, make_config, module_stack, stalk_cmd, wait_until
from tests.test_webhooks import Receiver

pytestmark = [pytest.mark.xdist_group("alerts")]  # one module stack, one xdist worker

APP = "tests.apps.events_app:app"
EAGER_APP = "tests.apps.events_app:eager_app"
SECRET = "alert-secret"
FAST = 0.2  # s between evaluations in these tests (the rules' minutes stay what they say)
RULE_KEYS = {"name", "kind", "description", "state", "since", "value", "threshold", "message"}
EVENT_KEYS = {"id", "rule", "state", "at", "message"}


@pytest.fixture(scope="module", autouse=True)
def fast_evaluation() -> Iterator[None]:
    saved, engine.INTERVAL = engine.INTERVAL, FAST
    yield
    engine.INTERVAL = saved


def states(stack: Stack) -> dict[str, str]:
    assert stack.alerts is not None
    return {r["name"]: r["state"] for r in stack.alerts.status(0)["rules"]}


def rule_of(stack: Stack, name: str) -> dict[str, Any]:
    assert stack.alerts is not None
    return next(r for r in stack.alerts.status(0)["rules"] if r["name"] == name)


def states_at(receiver: Receiver, path: str) -> list[str]:
    return [_payload_state(r.payload) for r in receiver.at(path)]


def _payload_state(payload: dict[str, Any]) -> str:
    if "text" in payload:
        return "firing" if "FIRING" in payload["text"] else "resolved"
    return payload["state"]


# -- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("table", "message"), [
    ({}, r"alerts\[0\].kind = None: expected one of task_failures, queue_depth, worker_offline, quota"),
    ({"kind": "disk"}, r"alerts\[0\].kind = 'disk': expected one of"),
    ({"kind": "task_failures", "minutes": 5}, r"alerts\[0\].count is missing"),
    ({"kind": "task_failures", "count": 3}, r"alerts\[0\].minutes is missing"),
    ({"kind": "task_failures", "count": 0, "minutes": 5}, r"alerts\[0\].count = 0: expected a whole number of at least 1"),
    ({"kind": "task_failures", "count": 2.5, "minutes": 5}, r"alerts\[0\].count = 2.5: expected a whole number"),
    ({"kind": "task_failures", "count": 3, "minutes": 0}, r"alerts\[0\].minutes = 0: expected a number of minutes above 0"),
    ({"kind": "task_failures", "count": 3, "minutes": 5, "depth": 4},
     r"unknown key alerts\[0\].depth for kind = 'task_failures': expected one of .*count.*minutes"),
    ({"kind": "queue_depth", "depth": 5, "minutes": 1}, r"alerts\[0\].queue is missing"),
    ({"kind": "queue_depth", "queue": "q", "depth": -1, "minutes": 1}, r"alerts\[0\].depth = -1"),
    ({"kind": "worker_offline", "minutes": "soon"}, r"alerts\[0\].minutes = 'soon'"),
    ({"kind": "worker_offline", "worker": ""}, r"alerts\[0\].worker = '': expected a non-empty worker name"),
    ({"kind": "quota", "percent": 0}, r"alerts\[0\].percent = 0: expected a number above 0 and at most 100"),
    ({"kind": "quota", "percent": 101}, r"alerts\[0\].percent = 101"),
    ({"kind": "quota", "percent": 80, "minutes": 3}, r"unknown key alerts\[0\].minutes for kind = 'quota'"),
    ({"kind": "quota", "percent": 80, "url": "ftp://x/"}, r"alerts\[0\].url = 'ftp://x/': expected an http:// or https://"),
    ({"kind": "quota", "percent": 80, "url": []}, r"alerts\[0\].url = \[\]: expected an http\(s\) URL"),
    ({"kind": "quota", "percent": 80, "format": "xml"}, r"alerts\[0\].format = 'xml': expected one of json, slack"),
    ({"kind": "quota", "percent": 80, "secret": ""}, r"alerts\[0\].secret"),
    ({"kind": "quota", "percent": 80, "timeout": 0}, r"alerts\[0\].timeout = 0"),
    ({"kind": "quota", "percent": 80, "name": ""}, r"alerts\[0\].name = ''"),
])
def test_bad_alert_config_is_refused_clearly(tmp_path: Path, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, alerts=[table])


def test_alert_config_from_toml(tmp_path: Path) -> None:
    toml = tmp_path / "stalk.toml"
    toml.write_text('[[alerts]]\nkind = "task_failures"\ntask = "demo.*"\ncount = 3\nminutes = 10\n'
                    'url = "https://hooks.slack.com/services/T/B/X"\nformat = "slack"\n\n'
                    '[[alerts]]\nkind = "queue_depth"\nqueue = "default"\ndepth = 100\nminutes = 0.5\n'
                    'url = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]\nsecret = "s"\ntimeout = 2\n\n'
                    '[[alerts]]\nkind = "worker_offline"\n\n'
                    '[[alerts]]\nname = "youtube 80%"\nkind = "quota"\nquota = "youtube"\npercent = 80\n\n'
                    '[[alerts]]\nkind = "worker_offline"\nminutes = 5\n')
    failures, depth, offline, quota, offline2 = load_config(config_file=toml, environ={}).alerts
    assert failures == AlertConfig("task_failures:demo.*", "task_failures", "demo.*", 3.0, 10.0,
                                   ("https://hooks.slack.com/services/T/B/X",), "slack")
    assert (depth.subject, depth.threshold, depth.minutes, depth.urls, depth.secret, depth.timeout) == \
           ("default", 100.0, 0.5, ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"), "s", 2.0)
    assert (offline.name, offline.subject, offline.minutes, offline.threshold, offline.urls) == \
           ("worker_offline:*", "*", 1.0, 1.0, ())
    assert (quota.name, quota.subject, quota.threshold) == ("youtube 80%", "youtube", 80.0)
    assert offline2.name == "worker_offline:*#2"  # derived names are unique
    assert "secret" not in repr(depth)  # never in a log line
    toml.write_text('[[alerts]]\nname = "a"\nkind = "quota"\npercent = 1\n[[alerts]]\nname = "a"\nkind = "quota"\n'
                    'percent = 2\n')
    with pytest.raises(ConfigError, match="alerts.name = 'a': each alert name once"):
        load_config(config_file=toml, environ={})


def test_failure_counts_are_of_the_window_and_printable() -> None:
    """The task_failures meter on a real event store: failures older than the window do not count; a
    task name with control characters reaches the message escaped."""
    store = EventStore()
    now = time.time()
    for i, (name, age) in enumerate([("ev.bad\x1b[31m", 10), ("ev.bad\x1b[31m", 20), ("ev.boom", 30),
                                     ("ev.boom", 400), ("other", 5)]):
        store.ingest({"type": "task-received", "uuid": f"t{i}", "name": name, "timestamp": now - age - 1,
                      "hostname": "w@h"})
        store.ingest({"type": "task-failed", "uuid": f"t{i}", "exception": "E", "timestamp": now - age,
                      "hostname": "w@h"})

    class Held:
        events = store

    rule = AlertConfig("r", "task_failures", "ev.b*", 3.0, 1.0)
    reading = TaskFailures(rule).read(Round(Held(), now, lambda: ({}, None)))  # type: ignore[arg-type]
    assert reading.value == 3 and reading.breached is True
    assert "ev.bad\\x1b[31m x2" in reading.message and "ev.boom x1" in reading.message
    assert "\x1b" not in reading.message
    four = AlertConfig("r", "task_failures", "ev.b*", 4.0, 1.0)
    assert TaskFailures(four).read(Round(Held(), now, lambda: ({}, None))).breached is False  # type: ignore[arg-type]


# -- a real stack with a worker ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver().up()
    yield rec
    rec.down()


@pytest.fixture(scope="module")
def late_receiver() -> Iterator[Receiver]:
    """Down until the quota test brings it up."""
    rec = Receiver()
    yield rec
    rec.down()


def rules(receiver: Receiver, late: Receiver) -> list[dict[str, Any]]:
    return [
        {"name": "booms", "kind": "task_failures", "task": "ev.b*", "count": 3, "minutes": 0.1,
         "url": receiver.url("/json"), "secret": SECRET},
        {"name": "booms-slack", "kind": "task_failures", "task": "ev.boom", "count": 3, "minutes": 0.1,
         "url": [receiver.url("/slack")], "format": "slack"},
        {"name": "held", "kind": "queue_depth", "queue": "held", "depth": 2, "minutes": 0.02,
         "url": receiver.url("/queue")},
        {"name": "events worker", "kind": "worker_offline", "worker": "nobody@*", "minutes": 0.02},
        {"kind": "quota", "percent": 50, "url": late.url("/quota"), "backoff_max": 1},
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, late_receiver: Receiver) -> Iterator[Stack]:
    with module_stack(tmp_path_factory.mktemp("alerts") / "data", broker={"mode": "embedded"}, beat=False, app=APP,
                      alerts=rules(receiver, late_receiver)) as running:
        yield running


def send(stack: Stack, name: str, *args: Any, **options: Any) -> str:
    return stack.app.send_task(name, args, **options).id


@pytest.mark.procs
def test_task_failures_fire_and_resolve_in_json_and_slack(stack: Stack, receiver: Receiver) -> None:
    started = time.time()
    for i in range(3):
        send(stack, "ev.boom", f"bad {i}")
    assert wait_until(lambda: states_at(receiver, "/json")[-1:] == ["firing"]
                      and states_at(receiver, "/slack")[-1:] == ["firing"], timeout=20)
    fired = receiver.at("/json")[-1]
    payload = fired.payload
    assert set(payload) == {"event", "id", "rule", "kind", "description", "state", "value", "threshold", "at",
                            "message", "delivery_id"}
    assert (payload["event"], payload["rule"], payload["kind"], payload["threshold"]) == \
           ("alert.firing", "booms", "task_failures", 3.0)
    assert payload["value"] >= 3 and payload["at"] >= started and "ev.boom x3" in payload["message"]
    assert payload["description"] == "ev.b* failed >= 3 times in 0.1 min"
    assert fired.signature == "sha256=" + hmac.new(SECRET.encode(), fired.body, hashlib.sha256).hexdigest()
    assert payload["delivery_id"] == fired.delivery
    slack = receiver.at("/slack")[-1]
    assert list(slack.payload) == ["text"] and slack.signature is None
    assert slack.payload["text"].startswith(":rotating_light: FIRING [stalk] booms-slack: 3 failure(s) of ev.boom")
    assert states(stack)["booms"] == "firing"

    # the failures leave the 6 s window: resolved, once each
    assert wait_until(lambda: states_at(receiver, "/json")[-1:] == ["resolved"]
                      and states_at(receiver, "/slack")[-1:] == ["resolved"], timeout=20)
    resolved = receiver.at("/json")[-1].payload
    assert resolved["event"] == "alert.resolved" and resolved["value"] < 3 and resolved["id"] > payload["id"]
    assert "resolved [stalk] booms-slack" in receiver.at("/slack")[-1].payload["text"]
    time.sleep(1.0)
    assert states_at(receiver, "/json")[-2:] == ["firing", "resolved"]
    assert len({r.delivery for r in receiver.snapshot()}) == len(receiver.snapshot())  # none twice


@pytest.mark.procs
def test_queue_depth_fires_after_its_minutes_and_resolves(stack: Stack, receiver: Receiver) -> None:
    assert stack.control is not None
    for i in range(3):  # no worker consumes "held"
        send(stack, "ev.add", i, i, queue="held")
    assert wait_until(lambda: states_at(receiver, "/queue") == ["firing"], timeout=20)
    fired = receiver.at("/queue")[0].payload
    assert fired["value"] == 3 and fired["threshold"] == 2
    assert fired["message"] == "queue held holds 3 message(s), deeper than 2 for 0.02 min"
    held = rule_of(stack, "held")
    assert held["state"] == "firing" and held["value"] == 3 and held["description"] == \
           "queue held deeper than 2 for 0.02 min"
    assert stack.control.purge("held", by="test_alerts") == 3
    assert wait_until(lambda: states_at(receiver, "/queue") == ["firing", "resolved"], timeout=20)
    assert rule_of(stack, "held")["value"] == 0


@pytest.mark.procs
def test_a_broker_error_keeps_the_state_and_says_so(stack: Stack) -> None:
    assert stack.alerts is not None
    meter = stack.alerts.meters["held"]
    before = rule_of(stack, "held")["state"]

    def down() -> tuple[None, str]:
        return None, "ConnectionError: the broker went away"

    stack.alerts._depths, real = down, stack.alerts._depths  # the call the meters make, failing
    try:
        stack.alerts.wake()
        assert wait_until(lambda: "broker error" in (rule_of(stack, "held")["message"] or ""), timeout=10)
        held = rule_of(stack, "held")
        assert held["state"] == before and f"(state kept: {before})" in held["message"]
        assert meter is stack.alerts.meters["held"]
    finally:
        stack.alerts._depths = real


@pytest.mark.procs
def test_quota_use_fires_once_delivered_after_the_receiver_comes_up(stack: Stack, late_receiver: Receiver) -> None:
    name = "quota:default"
    assert rule_of(stack, name)["state"] == "unknown"  # no quota in the ledger yet
    assert "0 quotas" in rule_of(stack, name)["message"]
    with QuotaLedger(stack.paths.quota_db) as ledger:
        ledger.define(QuotaSpec("api", daily_limit=10))
        ledger.reserve("api", 6, key="alert-test")
    assert wait_until(lambda: rule_of(stack, name)["state"] == "firing", timeout=10)
    assert rule_of(stack, name)["value"] == 60.0
    with client_of(stack) as client:
        failing = wait_until(lambda: [r for r in client.get("/webhooks/deliveries", failures=True)
                                      if r["task_id"] == name], timeout=15)
        assert failing[0]["hook"] == f"alert:{name}:{late_receiver.url('/quota')}" and failing[0]["last_error"]
        late_receiver.up()
        assert wait_until(lambda: states_at(late_receiver, "/quota") == ["firing"], timeout=15)
        with QuotaLedger(stack.paths.quota_db) as ledger:
            ledger.define(QuotaSpec("api", daily_limit=100))
        assert wait_until(lambda: states_at(late_receiver, "/quota") == ["firing", "resolved"], timeout=15)
        time.sleep(1.0)
        assert states_at(late_receiver, "/quota") == ["firing", "resolved"]  # delivered once each
        assert "api: 6 of 10 units used (60%, fires at 50%)" in late_receiver.at("/quota")[0].payload["message"]
        assert not [r for r in client.get("/webhooks/deliveries", failures=True) if r["task_id"] == name]


@pytest.mark.procs
def test_the_api_the_metric_and_the_cli_show_them(stack: Stack, tmp_path: Path) -> None:
    send(stack, "ev.boom", "one")
    assert stack.alerts is not None
    with client_of(stack) as client:
        info = client.get("/alerts")
        assert set(info) == {"rules", "recent"}
        assert [r["name"] for r in info["rules"]] == ["booms", "booms-slack", "held", "events worker", "quota:default"]
        for rule in info["rules"]:
            assert set(rule) == RULE_KEYS and rule["state"] in ("ok", "firing", "unknown")
            assert isinstance(rule["threshold"], float) and isinstance(rule["description"], str)
        assert info["rules"][3]["description"] == "worker nobody@* offline for 0.02 min"
        assert info["rules"][3]["state"] == "ok" and info["rules"][3]["value"] == 0
        assert info["recent"], "the earlier tests fired"
        for event in info["recent"]:
            assert set(event) == EVENT_KEYS and event["state"] in ("firing", "resolved")
        ids = [e["id"] for e in info["recent"]]
        assert ids == sorted(ids, reverse=True)
        assert client.get("/alerts", limit=1)["recent"] == info["recent"][:1]
        assert [r["name"] for r in stack.alerts.status()["rules"]] == [r["name"] for r in info["rules"]]
        assert stack.alerts.status()["recent"][:1] == info["recent"][:1]  # the in-process view: the same
        text = client._http.get(client.base + "/metrics").text  # the API's Prometheus text
    firing = stack.alerts.firing()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {s.labels["rule"]: s.value for s in families["stalk_alert_firing"].samples}
    assert set(samples) == set(firing) and all(samples[r] == (1.0 if on else 0.0) for r, on in firing.items())

    def stalk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(stalk_cmd("alerts", "--data-dir", str(stack.paths.data_dir), *args),
                              capture_output=True, text=True, env=clean_env(), timeout=60)

    listed = stalk("--json", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [r["name"] for r in data["rules"]] == [r["name"] for r in info["rules"]] and len(data["recent"]) <= 5
    table = stalk()
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["RULE", "KIND", "STATE", "SINCE"]
    assert any(line.startswith("held ") and "queue_depth" in line and "/2 " in line for line in lines)
    assert any(line.split()[1:3] == ["AT", "STATE"] for line in lines)  # the recent firings' table
    hooks = subprocess.run(stalk_cmd("webhooks", "--data-dir", str(stack.paths.data_dir)), capture_output=True,
                           text=True, env=clean_env(), timeout=60)  # no [[webhooks]]: the alerts' deliveries
    assert hooks.returncode == 0 and "the outbox holds the [[alerts]]' notifications" in hooks.stdout, hooks.stdout
    assert "STATUS" in hooks.stdout and " delivered firing " in hooks.stdout
    none = subprocess.run(stalk_cmd("alerts", "--data-dir", str(tmp_path / "none")), capture_output=True, text=True,
                          env=clean_env(), timeout=60)
    assert none.returncode == 0 and "no alerts configured: add [[alerts]] to stalk.toml" in none.stdout


@pytest.mark.procs
def test_an_offline_worker_fires_and_resolves(running_stack, receiver: Receiver) -> None:
    """Its own stack: the worker's restart is a new process (a module stack must keep its processes)."""
    stack = running_stack(broker={"mode": "embedded"}, beat=False, app=APP, alerts=[
        {"name": "events worker", "kind": "worker_offline", "worker": "events@*", "minutes": 0.02,
         "url": receiver.url("/worker")}])
    # the worker was not heard from yet when the rule was first measured: it may have fired at start
    assert wait_until(lambda: states(stack)["events worker"] == "ok", timeout=30)
    seen: list[dict[str, Any]] = []
    with client_of(stack) as client:
        def watch() -> None:
            for batch in client.changes(("alerts",)):
                seen.append(batch)
                if any("events worker" in b.get("alerts", []) for b in seen[-1:]) and len(seen) > 2:
                    return

        feed = threading.Thread(target=watch, daemon=True)
        feed.start()
        stack.stop_process("worker:events")
        try:
            assert wait_until(lambda: states_at(receiver, "/worker")[-1:] == ["firing"], timeout=30)
            fired = receiver.at("/worker")[-1].payload
            assert fired["message"].startswith("worker events@") and "offline for" in fired["message"]
            assert fired["threshold"] == 0.02 and fired["value"] >= 0.02
        finally:
            stack.start_process("worker:events")
        assert wait_until(lambda: states_at(receiver, "/worker")[-1:] == ["resolved"], timeout=60)
        assert wait_until(lambda: stack.is_ready(), timeout=60)
        assert wait_until(lambda: sum("events worker" in b.get("alerts", []) for b in seen) >= 2, timeout=10)



# -- eager stacks: a restart, a corrupt history, none configured ---------------------------------------

def eager_config(data_dir: Path, receiver: Receiver, minutes: float = 1) -> Any:
    return make_config(data_dir, broker={"mode": "eager"}, app=EAGER_APP, alerts=[
        {"name": "any failure", "kind": "task_failures", "count": 1, "minutes": minutes, "url": receiver.url("/r")}])


def test_a_firing_alert_survives_a_restart_and_is_not_sent_again(tmp_path: Path) -> None:
    receiver = Receiver().up()
    try:
        with Stack(eager_config(tmp_path / "data", receiver, minutes=0.15)) as stack:
            stack.app.tasks["ev.boom"].delay("once")
            assert wait_until(lambda: states_at(receiver, "/r") == ["firing"], timeout=10)
            since = rule_of(stack, "any failure")["since"]
        path = tmp_path / "data" / "state" / "alerts.sqlite3"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with Stack(eager_config(tmp_path / "data", receiver, minutes=0.15)) as stack:
            # the failure is back from the task history, still in the 9 s window: firing, as recorded
            first = rule_of(stack, "any failure")
            assert (first["state"], first["since"]) == ("firing", since)
            time.sleep(1.0)  # evaluations meanwhile
            assert states_at(receiver, "/r") == ["firing"]  # not sent again
            # out of the window: resolved, once
            assert wait_until(lambda: states_at(receiver, "/r") == ["firing", "resolved"], timeout=20)
            assert [e["state"] for e in stack.alerts.status()["recent"]] == ["resolved", "firing"]  # type: ignore[union-attr]
        time.sleep(0.5)
        assert states_at(receiver, "/r") == ["firing", "resolved"]
    finally:
        receiver.down()


def test_a_corrupt_history_is_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "data" / "state"
    state.mkdir(parents=True, mode=0o700)
    os.chmod(tmp_path / "data", 0o700)
    (state / "alerts.sqlite3").write_bytes(b"not a database, not at all" * 100)
    receiver = Receiver().up()
    try:
        with Stack(eager_config(tmp_path / "data", receiver)) as stack:
            lines = [line.text for line in stack.logs(OWN_LOG)]
            assert any("alert history" in line and "moved to alerts.sqlite3.corrupt-" in line for line in lines), lines
            assert list(state.glob("alerts.sqlite3.corrupt-*"))
            stack.app.tasks["ev.boom"].delay("after")
            assert wait_until(lambda: states_at(receiver, "/r") == ["firing"], timeout=10)
            assert stack.alerts is not None and stack.alerts.status()["recent"][0]["state"] == "firing"
    finally:
        receiver.down()


def test_without_alerts_the_api_answers_empty(running_stack) -> None:
    stack = running_stack(broker={"mode": "eager"}, app=EAGER_APP)
    assert stack.alerts is None
    with client_of(stack) as client:
        assert client.get("/alerts") == {"rules": [], "recent": []}
    assert not (stack.paths.state / "alerts.sqlite3").exists()
    assert not (stack.paths.state / "webhooks.sqlite3").exists()


def test_a_dead_evaluation_thread_is_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver().up()
    try:
        with Stack(eager_config(tmp_path / "data", receiver)) as stack:
            alerts = stack.alerts
            assert alerts is not None
            real, calls = alerts.evaluate, {"n": 0}

            def dies_once() -> list[str]:
                calls["n"] += 1
                if calls["n"] == 1:
                    raise RuntimeError("evaluation bug")
                return real()

            monkeypatch.setattr(alerts, "evaluate", dies_once)
            first = alerts.thread
            alerts.wake()
            assert wait_until(lambda: alerts.thread is not first and alerts.thread.is_alive(), timeout=10)
            assert any(p.name == "thread:alerts" and p.restarts == 1 and "evaluation bug" in (p.last_error or "")
                       for p in stack.processes())
            stack.app.tasks["ev.boom"].delay("after the restart")
            assert wait_until(lambda: states_at(receiver, "/r") == ["firing"], timeout=10)
    finally:
        receiver.down()
