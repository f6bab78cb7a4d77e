"""A key holds the stack's background threads aside until its answer is painted (embedded.foreground)."""

from __future__ import annotations

import threading

from stalk.embedded import foreground
from stalk.embedded.foreground import Foreground
from stalk.panel import app as app_module

from .conftest import SIZE
from .harness import sync
from .test_task_screens import idle, live_app, until


@sync
async def test_a_key_holds_the_background_until_its_answer_is_painted(eager_stack, monkeypatch) -> None:
    fg = Foreground()
    monkeypatch.setattr(app_module, "FOREGROUND", fg)
    monkeypatch.setattr(foreground, "LONGEST_STRETCH", 60.0)
    monkeypatch.setattr(app_module, "KEY_HOLD", 30.0)  # only the repaint ends it here
    holds: list[float] = []
    hold = fg.hold
    monkeypatch.setattr(fg, "hold", lambda seconds: (holds.append(seconds), hold(seconds)))
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        await pilot.press("2")
        assert holds == [30.0]
        stepped = threading.Event()
        threading.Thread(target=lambda: (fg.step_aside(), stepped.set()), daemon=True).start()
        await until(pilot, lambda: stepped.is_set() and not fg.held, "released after the repaint")
        assert type(app.screen).__name__ == "TasksScreen"
        await pilot.press("down", "down")
        assert len(holds) == 3
        await until(pilot, lambda: not fg.held, "released again")


@sync
async def test_without_keys_nothing_is_held(eager_stack) -> None:
    app = live_app(eager_stack)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        assert not foreground.FOREGROUND.held
