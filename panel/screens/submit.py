"""Submit: pick a registered task (fuzzy), see its signature and docstring, edit args/kwargs JSON with
inline validation (nothing is sent while anything is invalid), queue, priority, countdown, expires."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.fuzzy import Matcher
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Select, Static, TextArea

from ..actions import bindings
from ..messages import Notice, OpenTask
from ..submit_form import describe_task, number, parse_json, registered_tasks
from .base import StalkScreen


class SubmitScreen(StalkScreen):
    SCOPE = "submit"
    BINDINGS = bindings("submit")
    CSS_PATH = "../styles/submit.tcss"

    class Submitted(Message):
        def __init__(self, task_id: str | None, problem: str | None) -> None:
            super().__init__()
            self.task_id, self.problem = task_id, problem

    def compose_body(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="submit-pick"):
                yield Input(placeholder="task name (fuzzy)", id="task-name")
                yield OptionList(id="task-options")
            with Vertical(id="submit-form"):
                yield Static(id="task-doc")
                yield Label("args (JSON list)")
                yield TextArea("[]", id="args", language=None, soft_wrap=True)
                yield Label("kwargs (JSON object)")
                yield TextArea("{}", id="kwargs", language=None, soft_wrap=True)
                with Horizontal(id="submit-options"):
                    yield Select([], prompt="queue (routed)", id="queue", allow_blank=True)
                    yield Input(placeholder="priority 0-9", id="priority", type="integer")
                    yield Input(placeholder="countdown s", id="countdown", type="number")
                    yield Input(placeholder="expires s", id="expires", type="number")
                yield Static(id="submit-problems")

    def on_mount(self) -> None:
        self.task_name: str | None = None
        self.sending = False
        self.sent: list[dict[str, Any]] = []  # requests handed to the control API (tests read it)
        self._fill_options("")
        self.watch(self.app, "phase", lambda _p: self._load_stack())
        self._validate()

    def _load_stack(self) -> None:
        stack = self.stack
        if stack is None:
            return
        queues = sorted({q for spec in getattr(stack, "worker_specs", ()) for q in spec.queues})
        self.query_one("#queue", Select).set_options([(q, q) for q in queues])
        self._fill_options(self.query_one("#task-name", Input).value)

    # -- task picker ----------------------------------------------------------------------------

    def _tasks(self) -> list[str]:
        return registered_tasks(getattr(self.stack, "user_app", None))

    def _fill_options(self, query: str) -> None:
        names = self._tasks()
        if query:
            matcher = Matcher(query)
            names = sorted((n for n in names if matcher.match(n) > 0), key=lambda n: -matcher.match(n))
        options = self.query_one("#task-options", OptionList)
        options.clear_options()
        options.add_options(names)

    @on(Input.Changed, "#task-name")
    def _name_typed(self, event: Input.Changed) -> None:
        self._fill_options(event.value)
        if event.value in self._tasks():
            self.pick(event.value)

    @on(OptionList.OptionSelected, "#task-options")
    def _option(self, event: OptionList.OptionSelected) -> None:
        self.pick(str(event.option.prompt))
        self.query_one("#args", TextArea).focus()

    @on(Input.Submitted, "#task-name")
    def _name_entered(self) -> None:
        options = self.query_one("#task-options", OptionList)
        if options.option_count:
            self.pick(str(options.get_option_at_index(0).prompt))
            self.query_one("#args", TextArea).focus()

    def pick(self, name: str) -> None:
        self.task_name = name
        signature, doc = describe_task(getattr(self.stack, "user_app", None), name)
        self.query_one("#task-doc", Static).update(f"[b]{escape(signature)}[/b]\n{escape(doc)}")
        self._validate()

    def action_pick_task(self) -> None:
        self.query_one("#task-name", Input).focus()

    def prefill(self, name: str, args: Any, kwargs: Any, queue: str | None) -> None:
        """Re-submit from Task detail: the same task, arguments and queue."""
        import json

        self.query_one("#task-name", Input).value = name
        self.pick(name)
        self.query_one("#args", TextArea).text = json.dumps(args)
        self.query_one("#kwargs", TextArea).text = json.dumps(kwargs)
        select = self.query_one("#queue", Select)
        if queue and any(value == queue for _label, value in select._options):
            select.value = queue

    # -- validation and submit ------------------------------------------------------------------

    def request(self) -> tuple[dict[str, Any] | None, list[str]]:
        problems = []
        args, error = parse_json("args", self.query_one("#args", TextArea).text, list)
        problems += [error] if error else []
        kwargs, error = parse_json("kwargs", self.query_one("#kwargs", TextArea).text, dict)
        problems += [error] if error else []
        values: dict[str, Any] = {}
        for key, integer in (("priority", True), ("countdown", False), ("expires", False)):
            values[key], error = number(self.query_one(f"#{key}", Input).value, key, integer)
            problems += [error] if error else []
        if not self.task_name:
            problems.append("pick a task first")
        if problems:
            return None, problems
        queue = self.query_one("#queue", Select).value
        return {"name": self.task_name, "args": args, "kwargs": kwargs,
                "queue": None if queue is Select.BLANK else queue, **values}, []

    @on(TextArea.Changed)
    @on(Input.Changed, "#priority, #countdown, #expires")
    def _validate(self) -> None:
        _request, problems = self.request()
        text = "\n".join(f"[$error]✗ {escape(p)}[/]" for p in problems if p != "pick a task first")
        if not text:
            text = "[$foreground-muted]pick a task[/]" if not self.task_name else "[$success]✓ ready: ctrl+s submits[/]"
        self.query_one("#submit-problems", Static).update(text)

    def action_submit(self) -> None:
        request, problems = self.request()
        if request is None:
            self._validate()
            self.notify(problems[0], title="Not sent", severity="error")
            return
        control = getattr(self.stack, "control", None)
        if control is None:
            self.notify("no control API on this stack", title="Not sent", severity="error")
            return
        if not self.sending:
            self.sending = True
            self.send(control, request)

    @work(thread=True, group="submit", exit_on_error=False)
    def send(self, control: Any, request: dict[str, Any]) -> None:
        try:
            problems = control.validate_submit(request) if hasattr(control, "validate_submit") else []
            if problems:
                self.post_message(self.Submitted(None, "; ".join(map(str, problems))))
                return
            self.sent.append(request)
            result = control.submit(request)
        except Exception as exc:  # shown inline, never a crash
            self.post_message(self.Submitted(None, str(exc)))
            return
        self.post_message(self.Submitted(str(getattr(result, "id", result)), None))

    @on(Submitted)
    def _submitted(self, message: Submitted) -> None:
        self.sending = False
        if message.problem:
            self.query_one("#submit-problems", Static).update(f"[$error]✗ {escape(message.problem)}[/]")
            self.post_message(Notice(f"not sent: {message.problem}", "error"))
            return
        self.app.post_message(OpenTask(message.task_id or ""))
