"""Hypothesis drives the Submit screen: 200 generated forms in one app session never crash it; every
invalid one shows each of the control API's error messages and sends nothing; valid ones are sent."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from textual.widgets import Input, TextArea

from stalk.embedded.control import Control
from stalk.panel.formatting import printable
from stalk.panel.screens.submit import SubmitScreen

from .conftest import SIZE
from .test_task_screens import fill_submit, idle, problems_text, workers_done
from .test_task_snapshots import app_with

FORMS = 40  # per app session; 3 sessions (Hypothesis draws the simplest first)

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3),
                           max_leaves=4)
junk = st.text(max_size=20) | st.sampled_from(["[1, 2", "{'a': 1}", "(2, 3)", "[1, 2, ...]", "{\"a\": }", "null",
                                                "[NaN]", "[1e999]", "{1: 2}", "\n\n[\n1,,]", "\x00"])
pairs = st.lists(st.integers() | st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2)
json_lists = st.lists(json_values, max_size=3).map(json.dumps)
json_dicts = st.dictionaries(st.text(max_size=6), json_values, max_size=2).map(json.dumps)
# junk first: Hypothesis starts with the simplest example ("" args: demo.add misses x and y, refused fast)
args_text = st.one_of(junk, pairs.map(json.dumps), pairs.map(json.dumps), json_lists, json_values.map(json.dumps))
kwargs_text = st.one_of(st.just("{}"), st.just(""), json_dicts, json_values.map(json.dumps), junk)
number_text = st.one_of(st.just(""), st.just(""), st.just(""), st.integers(-5, 20).map(str), st.floats().map(str),
                        st.sampled_from(["abc", "1e400", "nan", "-inf", "3.5", " 7 ", "0x10", "٣"]),
                        st.text(max_size=6))
eta_text = st.one_of(st.just(""), st.just(""), st.datetimes().map(lambda d: d.isoformat()),
                     st.sampled_from(["2030-01-31T09:00:00Z", "tomorrow", "2030-13-01", "1999-01-01"]))
forms = st.fixed_dictionaries({"args": args_text, "kwargs": kwargs_text, "priority": number_text,
                               "countdown": number_text, "eta": eta_text, "expires": number_text})


class RecordingControl(Control):
    """The eager stack's real Control (its validation and force rules); the publish itself is recorded."""

    def send(self, checked: Any) -> Any:
        self.published.append(checked)  # type: ignore[attr-defined]
        return type("Result", (), {"id": f"fuzz-{len(self.published)}"})()  # type: ignore[attr-defined]


async def quick(pilot) -> None:
    """Workers done, messages handled (no wait for CPU idle: the stack's threads keep it busy)."""
    for _ in range(2):
        await workers_done(pilot)
        await pilot.pause(0)


async def drive(stack: Any, inputs: list[dict[str, str]]) -> dict[str, int]:
    control = RecordingControl(stack.app, user_app=stack.user_app, worker_specs=stack.worker_specs, eager=True)
    control.published = []  # type: ignore[attr-defined]
    app = app_with(stack, control=control)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = await fill_submit(pilot, "demo.add")
        for form in inputs:
            screen.query_one("#args", TextArea).text = form["args"]
            screen.query_one("#kwargs", TextArea).text = form["kwargs"]
            for key in ("priority", "countdown", "eta", "expires"):
                screen.query_one(f"#{key}", Input).value = form[key]
            await quick(pilot)
            request = screen.request()
            expected = control.validate_submit(request)
            errors = [p for p in expected if p.severity == "error"]
            published = len(control.published)
            await pilot.press("ctrl+s")
            await quick(pilot)
            if errors:
                assert len(control.published) == published, (form, errors)
                shown = problems_text(screen)
                for problem in errors:
                    assert printable(problem.message) in shown, (form, problem.message, shown)
                assert isinstance(app.screen, SubmitScreen)
            else:
                assert len(control.published) == published + 1, (form, expected)
                await quick(pilot)
                await app.pop_screen()  # the sent task's detail, on the Tasks mode (a 7 before it is gone
                await pilot.press("7")  # raced the dismissal: the next form went to the Tasks screen)
                await quick(pilot)
                assert app.screen is screen
            failures = [n for n in app._notifications if n.severity == "error" and n.title != "Not sent"]
            assert not failures, [n.message for n in failures]
            app.clear_notifications()
        assert app.is_running
    return {"sent": len(control.published), "refused": len(inputs) - len(control.published)}


@pytest.mark.slow  # 120 forms driven through the screen: ~10 s of CPU
def test_submit_screen_survives_generated_forms(eager_stack) -> None:
    """Three app sessions of 40 forms each: Hypothesis' simplest draw, then seeded random ones."""
    totals: Counter[str] = Counter()

    @settings(max_examples=3, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @seed(20261127)
    @given(inputs=st.lists(forms, min_size=FORMS, max_size=FORMS))
    def run(inputs: list[dict[str, str]]) -> None:
        totals.update(asyncio.run(drive(eager_stack, inputs)))

    run()
    assert totals["sent"] and totals["refused"], totals  # both paths were exercised
