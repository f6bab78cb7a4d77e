"""Submit validation with no processes: each check, and 1,000 generated inputs that never crash it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stalk.embedded.control import Control, SubmitContext, SubmitError, SubmitRequest, validate
from stalk.embedded.control.cluster import ClusterView
from stalk.embedded.demo.app import app as demo_app

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CTX = SubmitContext(tasks=frozenset({"demo.add", "demo.slow_add"}), queues=frozenset({"default", "slow"}),
                    visibility_timeout=3600, revoked=frozenset({"revoked-id"}),
                    route=lambda name: "slow" if name == "demo.slow_add" else "default", now=lambda: NOW)


def problems(**fields):
    fields.setdefault("name", "demo.add")
    return validate(fields, CTX)[0]


def only(**fields):
    found = problems(**fields)
    assert len(found) == 1, found
    return found[0]


def test_valid_request_is_checked_into_send_options():
    found, checked = validate({"name": "demo.add", "args": "[1, 2]", "kwargs": '{"z": 1}', "queue": "default",
                               "priority": "5", "countdown": 10, "expires": 60, "task_id": "my-id",
                               "retry": True, "retry_policy": '{"max_retries": 3}'}, CTX)
    assert found == []
    assert checked.args == [1, 2] and checked.kwargs == {"z": 1}
    assert checked.options == {"queue": "default", "priority": 5, "countdown": 10, "expires": 60,
                               "retry": True, "retry_policy": {"max_retries": 3}, "task_id": "my-id"}


def test_bad_json_names_line_and_column():
    p = only(args='[1,\n  2,, 3]')
    assert (p.severity, p.field) == ("error", "args")
    assert "line 2, column 5" in p.message


@pytest.mark.parametrize(("field", "value", "says"), [
    ("args", '{"a": 1}', "args: expected a JSON list, got an object"),
    ("args", 5, "args: expected a JSON list, got a number"),
    ("kwargs", "[1]", "kwargs: expected a JSON object, got a list"),
    ("kwargs", "null", "kwargs: expected a JSON object, got null"),
])
def test_args_must_be_a_list_and_kwargs_an_object(field, value, says):
    assert only(**{field: value}).message == says


def test_unknown_task_is_an_error_with_a_suggestion():
    p = only(name="demo.ad")
    assert p.field == "name" and "not registered on any worker" in p.message and "demo.add" in p.message


def test_unknown_task_is_a_warning_when_nothing_is_known():
    found, checked = validate({"name": "x.y"}, SubmitContext())
    assert [p.severity for p in found] == ["warning"] and checked is not None


def test_queue_nobody_consumes():
    p = only(queue="nope")
    assert p.severity == "error" and "no worker consumes it (consumed: default, slow)" in p.message


def test_routed_queue_nobody_consumes_is_a_warning():
    ctx = SubmitContext(tasks=CTX.tasks, queues=frozenset({"default"}), route=CTX.route)
    found, _ = validate({"name": "demo.slow_add"}, ctx)
    assert [(p.severity, p.field) for p in found] == [("warning", "queue")]


@pytest.mark.parametrize(("fields", "says"), [
    ({"countdown": 3601}, "longer than the broker's visibility timeout (3600 s)"),
    ({"eta": (NOW + timedelta(hours=2)).isoformat()}, "longer than the broker's visibility timeout"),
    ({"eta": NOW + timedelta(hours=2)}, "kombu#337"),
])
def test_delay_past_the_visibility_timeout(fields, says):
    assert says in only(**fields).message


@pytest.mark.parametrize(("fields", "says"), [
    ({"countdown": -1}, "countdown: must not be negative"),
    ({"countdown": "soon"}, "countdown: expected a number of seconds, got 'soon'"),
    ({"countdown": math.inf}, "countdown: expected a number of seconds"),
    ({"expires": -5}, "expires: must not be negative"),
    ({"expires": "yesterday"}, "expires: expected an ISO 8601 time"),
    ({"expires": (NOW - timedelta(seconds=1)).isoformat()}, "is already past"),
    ({"countdown": 100, "expires": 50}, "expires: it would expire (50 s) before it runs (100 s)"),
    ({"eta": "2030-13-01"}, "eta: expected an ISO 8601 time"),
    ({"countdown": 1, "eta": NOW}, "eta: give a countdown or an eta, not both"),
    ({"priority": 10}, "priority: must be 0-9, got 10"),
    ({"priority": -1}, "priority: must not be negative"),
    ({"priority": 2.5}, "priority: expected a whole number, got 2.5"),
    ({"priority": True}, "priority: expected a whole number, got true/false"),
    ({"retry": "yes"}, "retry: expected true or false"),
    ({"retry_policy": '{"max_retries": -1}'}, "retry_policy.max_retries: must not be negative"),
    ({"retry_policy": '{"tries": 1}'}, "retry_policy: unknown key(s) tries"),
    ({"task_id": "has space"}, "task_id: expected 1-255 characters"),
    ({"name": ""}, "task: a task name is required"),
])
def test_invalid_numbers_and_fields(fields, says):
    p = only(**fields)
    assert p.severity == "error" and says in p.message


def test_revoked_task_id_is_a_warning():
    assert only(task_id="revoked-id").severity == "warning"


def test_unknown_request_fields_are_reported_not_raised():
    found, checked = validate({"name": "demo.add", "colour": "red"}, CTX)
    assert checked is None and "unknown field(s) colour" in found[0].message


def test_request_of_dict():
    req = SubmitRequest.of({"name": "demo.add", "args": [1, 2]})
    assert req.name == "demo.add" and req.args == [1, 2] and req.queue is None
    with pytest.raises(SubmitError, match="unknown field"):
        SubmitRequest.of({"name": "demo.add", "bogus": 1})


def eager_control() -> Control:
    return Control(demo_app, eager=True, view=ClusterView(demo_app, demo_app, eager=True))


def test_control_submit_raises_and_sends_nothing_on_errors():
    control = eager_control()
    with pytest.raises(SubmitError, match="args: invalid JSON at line 1, column 2") as info:
        control.submit({"name": "demo.add", "args": "[", "kwargs": "{}"})
    assert str(info.value.problems[0]) == info.value.problems[0].message


class StaticView(ClusterView):
    """The cluster as CTX describes it, without a broker."""

    def tasks(self):
        return CTX.tasks

    def queues(self):
        return CTX.queues

    def route(self, name):
        return CTX.route(name)


class StaticControl(Control):
    """Generated args are not checked against demo.add's signature here
    (test_arguments_that_do_not_fit_the_signature... covers that)."""

    def _argument_check(self, name):
        return None


CONTROL = StaticControl(demo_app, view=StaticView(demo_app), visibility_timeout=3600)


def test_control_validates_against_its_view():
    (unchecked,) = CONTROL.validate_submit({"name": "demo.add", "queue": "slow", "countdown": 5})
    # this control cannot check demo.add's arguments: it says so (a warning) instead of passing silently
    assert unchecked.severity == "warning" and "arguments not checked" in unchecked.message
    assert [p.field for p in CONTROL.validate_submit({"name": "x", "queue": "y", "countdown": 4000})] == [
        "name", "queue", "countdown"]
    assert CONTROL.validate_submit("not a dict")[0].message.startswith("request: expected a dict")


# -- generated inputs ------------------------------------------------------------------------------

def field_strategy(valid, invalid):
    return st.one_of(st.tuples(st.just(True), valid), st.tuples(st.just(False), invalid))


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8))
JSON_LIST = st.lists(JSON_SCALARS, max_size=4)
JSON_DICT = st.dictionaries(st.text(min_size=1, max_size=6), JSON_SCALARS, max_size=3)
JUNK_TEXT = st.sampled_from(["[1,", "{", "[1] x", "{'a': 1}", "nul", "[1, 2,]", '{"a" 1}', "]"])
NUMBER_JUNK = st.one_of(st.integers(max_value=-1), st.sampled_from(["abc", "1e", "--1", "nan", "inf"]),
                        st.floats(allow_nan=True).filter(lambda x: not math.isfinite(x)),
                        st.lists(st.integers(), max_size=1))
FIELDS = {
    "name": field_strategy(st.sampled_from(["demo.add", "demo.slow_add", " demo.add "]),
                           st.one_of(st.sampled_from(["", "demo.nope", "   "]), st.integers(), st.none())),
    "args": field_strategy(st.one_of(JSON_LIST, JSON_LIST.map(_json := __import__("json").dumps), st.none()),
                           st.one_of(JUNK_TEXT, JSON_DICT.map(_json), st.integers(), JSON_DICT.filter(bool))),
    "kwargs": field_strategy(st.one_of(JSON_DICT, JSON_DICT.map(_json), st.none()),
                             st.one_of(JUNK_TEXT, JSON_LIST.map(_json), st.integers(), JSON_LIST)),
    "queue": field_strategy(st.sampled_from([None, "default", "slow"]),
                            st.one_of(st.sampled_from(["nope", "", " "]), st.integers())),
    "priority": field_strategy(st.one_of(st.none(), st.integers(0, 9), st.integers(0, 9).map(str)),
                               st.one_of(st.integers(10, 10**9), NUMBER_JUNK, st.just(4.5), st.booleans())),
    "countdown": field_strategy(st.one_of(st.none(), st.floats(0, 100), st.integers(0, 100).map(str)),
                                st.one_of(NUMBER_JUNK, st.integers(3601, 10**9))),
    "expires": field_strategy(st.one_of(st.none(), st.integers(200, 10**5)),
                              st.one_of(NUMBER_JUNK, st.sampled_from(["2020-01-01T00:00:00", "tomorrow"]))),
    "task_id": field_strategy(st.one_of(st.none(), st.uuids().map(str), st.text("abc-_0", min_size=1)),
                              st.one_of(st.sampled_from(["a b", "x\n", "a" * 256]), st.integers())),
}


@pytest.mark.fault
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_generated_inputs_never_raise_and_every_invalid_field_is_named(tagged):
    """Through Control.validate_submit: never raises; each invalid field gets a one-line error naming it;
    a request with no invalid field gets no error."""
    request = {field: value for field, (_ok, value) in tagged.items()}
    bad = {field for field, (ok, _value) in tagged.items() if not ok}
    if "name" not in request:
        bad.add("name")
    found = CONTROL.validate_submit(request)
    errors = [p for p in found if p.severity == "error"]
    for p in found:
        assert p.severity in ("error", "warning")
        assert p.message and "\n" not in p.message and "Traceback" not in p.message
    assert {p.field for p in errors} >= bad, (request, found)
    if not bad:
        assert errors == [], (request, found)


def test_arguments_that_do_not_fit_the_signature_are_refused_before_sending():
    control = Control(demo_app, user_app=demo_app, eager=True)
    missing = control.validate_submit({"name": "demo.add", "args": [2]})
    assert [p.message for p in missing] == ["task 'demo.add': add() missing 1 required positional argument: 'y'"]
    extra = control.validate_submit({"name": "demo.add", "args": [2, 3], "kwargs": {"z": 1}})
    assert [p.field for p in extra] == ["args"] and "unexpected keyword argument 'z'" in extra[0].message
    assert control.validate_submit({"name": "demo.slow_add", "args": [1, 1], "kwargs": {"seconds": 2}}) == []
    with pytest.raises(SubmitError):
        control.submit({"name": "demo.add", "args": [1, 2, 3]})


def test_a_canvas_step_parses_like_the_submit_options():
    from stalk.panel.cli.canvas import parse_step

    assert parse_step("demo.add") == {"name": "demo.add"}
    assert parse_step(' demo.add [2, 3]  {"x": [1]} ') == {"name": "demo.add", "args": "[2, 3]", "kwargs": '{"x": [1]}'}
    assert parse_step("demo.add [1,") == {"name": "demo.add", "args": "[1,"}  # left for validation to name
