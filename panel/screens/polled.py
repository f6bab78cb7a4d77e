"""A mode screen that polls the stack on a thread worker (dolphie: the next poll is scheduled when the
last one was drawn, so polls never pile up; a screen that is not shown skips polls until it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.message import Message
from textual.timer import Timer

from stalk.panel.messages import Notice
from stalk.panel.screens.base import StalkScreen


class PolledScreen(StalkScreen):
    """Subclasses implement `fetch()` (worker thread: stack calls only) and `draw(data)` (UI thread)."""

    POLL_EVERY = 2.0
    AFTER_ACTION = 0.3

    class Fetched(Message):
        def __init__(self, data: Any) -> None:
            super().__init__()
            self.data = data

    def on_mount(self) -> None:
        self._polling = False
        self._timer: Timer | None = None
        self.watch(self.app, "phase", lambda _p: self._start_polling())

    def _start_polling(self) -> None:
        if not self._polling and self.stack is not None and self.stack.broker is not None:
            self._polling = True
            self.poll()

    def poll_soon(self, delay: float | None = None) -> None:
        """One pending poll at most (UI thread; Textual timers need a delay above 0)."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.AFTER_ACTION if delay is None else delay, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.poll()
        else:
            self.poll_soon(self.POLL_EVERY)

    def on_screen_resume(self) -> None:
        if self._polling:
            self.poll_soon(0.01)

    @work(thread=True, exclusive=True, group="screen-poll", exit_on_error=False)
    def poll(self) -> None:
        try:
            data = self.fetch()
        except Exception as exc:  # a notice, and polling goes on (fetch() normally reports its own problems)
            self.post_message(Notice(f"{self.SCOPE}: {type(exc).__name__}: {exc}", "error", 10))
            self.app.call_from_thread(self.poll_soon, self.POLL_EVERY)
            return
        self.post_message(self.Fetched(data))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        self.draw(message.data)
        self.poll_soon(self.POLL_EVERY)

    @work(thread=True, group="screen-actions", exit_on_error=False)
    def call(self, label: str, fn: Callable[[], Any], done: Callable[[Any], str]) -> None:
        """One blocking stack call off the UI thread; its outcome becomes a notice, then a re-poll."""
        try:
            result = fn()
        except Exception as exc:  # stack errors are notices, never crashes
            self.post_message(Notice(f"{label}: {exc}", "error", 10))
        else:
            self.post_message(Notice(done(result)))
        self.app.call_from_thread(self.poll_soon)

    def fetch(self) -> Any:
        raise NotImplementedError

    def draw(self, data: Any) -> None:
        raise NotImplementedError
