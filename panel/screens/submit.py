"""Submit: pick a registered task (fuzzy), see its signature and docstring, edit args/kwargs JSON and the
options with inline validation. Syntax is checked as you type; the control API's checks (unknown task,
queue nobody consumes, countdown past the visibility timeout...) follow. Errors never send; warnings
send only on a second ctrl+s. A sent task opens in Task detail over the form (esc comes back to it),
where it moves through its states."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.fuzzy import Matcher
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Select, Static, TextArea

from stalk.embedded.control import Problem
from stalk.embedded.service import describe_task
from stalk.panel.actions import bindings
from stalk.panel.formatting import printable
from stalk.panel.markup_text import escape
from stalk.panel.messages import Notice, Phase
from stalk.panel.screens.base import StalkScreen
from stalk.panel.screens.detail import DetailScreen
from stalk.panel.submit_form import (
    NUMBER_FIELDS,
    local_problems,
    registered_tasks,
    request_of,
)
from stalk.panel.widgets.json_area import JsonArea


def problems_markup(problems: list[Problem], armed: bool = False) -> str:
    lines = [f"[$error]✗ {escape(printable(p.message))}[/]" for p in problems if p.severity == "error"]
    lines += [f"[$warning]⚠ {escape(printable(p.message))}[/]" for p in problems if p.severity != "error"]
    if any(p.severity == "error" for p in problems):
        lines.append("[$foreground-muted]nothing is sent while there are errors[/]")
    elif problems:
        lines.append("[$warning]press ctrl+s again to send anyway[/]" if armed
                     else "[$foreground-muted]ctrl+s asks once more before sending with warnings[/]")
    return "\n".join(lines)


def labelled(box: Input, label: str) -> Input:
    """An option's name in its box's top border: it stays once a value replaces the placeholder."""
    box.border_title = label
    return box


class SubmitScreen(StalkScreen):
    SCOPE = "submit"
    BINDINGS = bindings("submit")
    CSS_PATH = "../styles/submit.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # options in two rows below 100 columns
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # smaller JSON boxes below 30 rows

    class Loaded(Message):
        def __init__(self, tasks: list[str], queues: list[str],
                     described: dict[str, tuple[str, str]] | None = None) -> None:
            super().__init__()
            self.tasks, self.queues, self.described = tasks, queues, described or {}

    class Checked(Message):
        """The control API's verdict on `request` (stale when the form changed since)."""

        def __init__(self, request: dict[str, Any], problems: list[Problem]) -> None:
            super().__init__()
            self.request, self.problems = request, problems

    class Submitted(Message):
        def __init__(self, request: dict[str, Any], task_id: str | None, problems: list[Problem],
                     armed: bool = False) -> None:
            super().__init__()
            self.request, self.task_id, self.problems, self.armed = request, task_id, problems, armed

    def compose_body(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="submit-pick"):
                yield Input(placeholder="task name (fuzzy)", id="task-name")
                yield OptionList(id="task-options", markup=False)  # task names as written
            with Vertical(id="submit-form"):
                yield Static(id="task-doc")
                yield Label("args (JSON list)")
                yield JsonArea("[]", id="args", language=None, soft_wrap=True)
                yield Label("kwargs (JSON object)")
                yield JsonArea("{}", id="kwargs", language=None, soft_wrap=True)
                with Horizontal(id="submit-options"):
                    yield Select([], prompt="queue: routed", tooltip="blank: the queue the app routes the task to", id="queue", allow_blank=True)
                    yield labelled(Input(placeholder="0-9", id="priority", type="integer", tooltip="0-9"),
                                   "priority")
                    yield labelled(Input(placeholder="seconds", id="countdown", type="number",
                                         tooltip="seconds from now (or give an eta)"), "countdown")
                    yield labelled(Input(placeholder="ISO time", id="eta",
                                         tooltip="ISO 8601 time, e.g. 2030-01-31T09:00:00Z"), "eta")
                    yield labelled(Input(placeholder="seconds", id="expires", type="number",
                                         tooltip="seconds from now: not run after that"), "expires")
                yield Static(id="submit-problems")

    def on_mount(self) -> None:
        self.task_name: str | None = None
        self.task_names: list[str] = []
        self.described: dict[str, tuple[str, str]] = {}  # name -> (signature, doc), from the stack's API
        self.sending = False
        self.sent: list[dict[str, Any]] = []  # requests handed to control.submit (tests read it)
        self.armed: dict[str, Any] | None = None  # the request whose warnings were shown once
        self.wanted_queue: str | None = None  # from a re-submit, until the queue list is loaded
        self.watch(self.app, "phase", self._phase_changed)
        self._validate()

    def _phase_changed(self, _phase: Phase) -> None:  # a watcher returns None (load returns its Worker)
        self.load()

    @property
    def control(self) -> Any:
        return getattr(self.stack, "control", None)

    # -- tasks and queues -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="submit-load", exit_on_error=False)
    def load(self) -> None:
        """Registered tasks (the workers' answer, else the app's registry) and the routing table's queues."""
        stack, control = self.stack, self.control
        if stack is None:
            return
        local = registered_tasks(getattr(stack, "user_app", None))
        tasks, queues = local, sorted({q for spec in getattr(stack, "worker_specs", ()) for q in spec.queues})
        described: dict[str, tuple[str, str]] = {}
        if control is not None:
            try:
                if hasattr(control, "task_types"):  # a RemoteStack's: the user's app lives in the stack process
                    described = {t.name: (t.signature, t.doc) for t in control.task_types()}
                    tasks = sorted(described)
                else:
                    tasks = sorted(n for n in control.registered_tasks() if not n.startswith("celery.")) or local
                queues = list(control.known_queues()) or queues
            except Exception as exc:  # no answer: the local registry stands in
                self.post_message(Notice(f"submit: asking the workers failed: {exc}", "warning"))
        self.post_message(self.Loaded(tasks, queues, described))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.task_names, self.described = message.tasks, message.described
        select = self.query_one("#queue", Select)
        current = None if select.is_blank() else select.value
        select.set_options([(q, q) for q in message.queues])
        if current in message.queues:
            select.value = current
        self._choose_queue()
        self._fill_options(self.query_one("#task-name", Input).value)
        if self.task_name is not None:  # picked before the list came (a re-submit): now with its signature
            self._show_doc(self.task_name)

    def _fill_options(self, query: str) -> None:
        names = self.task_names
        if query:
            matcher = Matcher(query)
            scored = [(matcher.match(n), n) for n in names]
            names = [n for score, n in sorted(scored, key=lambda s: -s[0]) if score > 0]
        options = self.query_one("#task-options", OptionList)
        options.clear_options()
        options.add_options(names)

    @on(Input.Changed, "#task-name")
    def _name_typed(self, event: Input.Changed) -> None:
        """The task sent is always the one named in the box: a name that matches no task unpicks."""
        self._fill_options(event.value)
        if event.value in self.task_names:
            self.pick(event.value)
        elif self.task_name is not None or event.value:
            self.task_name = None
            typed = f"no task named [b]{escape(event.value)}[/b]: " if event.value.strip() else ""
            self.query_one("#task-doc", Static).update(f"[$foreground-muted]{typed}pick one from the list[/]")
            self._validate()

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
        box = self.query_one("#task-name", Input)
        if box.value != name:
            with box.prevent(Input.Changed):
                box.value = name
            self._fill_options(name)
        self.task_name = name
        self._show_doc(name)
        self._validate()

    def _show_doc(self, name: str) -> None:
        signature, doc = self.described.get(name) or describe_task(getattr(self.stack, "user_app", None), name)
        text = f"[b]{escape(signature or name)}[/b]"
        if doc:
            text += f"\n{escape(doc)}"
        self.query_one("#task-doc", Static).update(text)

    def action_pick_task(self) -> None:
        """Focus the picker with its text selected: typing replaces it."""
        box = self.query_one("#task-name", Input)
        box.focus()
        box.select_all()

    def action_leave_field(self) -> None:
        """Every field takes printable keys, so the number keys, `?` and `:` work again only with none
        focused (`tab` goes back to the first)."""
        self.set_focus(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_field" and self.focused is None:
            return None  # shown dimmed: no field to leave
        return True

    def prefill(self, name: str, args: str, kwargs: str, queue: str | None) -> None:
        """Re-submit from Task detail: the same task, arguments (JSON text) and queue. No field has focus:
        the keys the user pressed in the detail (a number, `?`) keep their meaning; tab enters the form.
        Call it after the screen's resume (call_later), which would focus the task name again. The name goes
        in through pick() only: a plain value change would, before the task list came, unpick it."""
        self.pick(name)
        self.query_one("#args", TextArea).text = args
        self.query_one("#kwargs", TextArea).text = kwargs
        self.wanted_queue = queue
        self._choose_queue()
        self.set_focus(None)

    def _choose_queue(self) -> None:
        """The re-submitted task's queue, once the queue list has it."""
        select = self.query_one("#queue", Select)
        if self.wanted_queue and any(value == self.wanted_queue for _label, value in select._options):
            select.value = self.wanted_queue
            self.wanted_queue = None

    # -- validation ---------------------------------------------------------------------------

    def request(self) -> dict[str, Any]:
        """The form as the dict control.validate_submit / submit take (texts; control parses them)."""
        select = self.query_one("#queue", Select)
        values = {key: self.query_one(f"#{key}", Input).value for key in NUMBER_FIELDS}
        return request_of(self.task_name, self.query_one("#args", TextArea).text,
                          self.query_one("#kwargs", TextArea).text,
                          None if select.is_blank() else str(select.value), values)

    def _show(self, text: str) -> None:
        self.query_one("#submit-problems", Static).update(text)

    @on(TextArea.Changed)
    @on(Input.Changed, "#priority, #countdown, #eta, #expires")
    @on(Select.Changed, "#queue")
    def _validate(self) -> None:
        """Syntax now (pure, same messages as the control API); the control's checks in a worker."""
        self.armed = None
        request = self.request()
        problems = local_problems(request)
        if problems:
            self._show(problems_markup(problems))
        elif not self.task_name:
            self._show("[$foreground-muted]pick a task (ctrl+l)[/]")
        elif self.control is None:
            self._show("[$foreground-muted]waiting for the stack…[/]")
        if self.task_name and self.control is not None:
            self.check(self.control, request)  # the full list (a superset of the syntax errors) follows

    @work(thread=True, exclusive=True, group="submit-check", exit_on_error=False)
    def check(self, control: Any, request: dict[str, Any]) -> None:
        self.post_message(self.Checked(request, control.validate_submit(request)))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        if message.request != self.request():
            return  # the form changed meanwhile; a newer check is on its way
        self._show(problems_markup(message.problems) if message.problems
                   else "[$success]✓ ready: ctrl+s submits[/]")

    # -- submit -------------------------------------------------------------------------------

    def action_submit(self) -> None:
        request = self.request()
        problems = local_problems(request)
        if not self.task_name:
            problems = [Problem("error", "pick a task first (ctrl+l)", "name"), *problems]
        control = self.control
        if control is None and not problems:
            problems = [Problem("error", "no control API on this stack yet", None)]
        if problems:
            self._show(problems_markup(problems))
            self.notify(printable(problems[0].message), title="Not sent", severity="error")
            if self.task_name and control is not None:
                self.check(control, request)
            return
        if not self.sending:
            self.sending = True
            self.send(control, request, force=self.armed == request)

    @work(thread=True, group="submit", exit_on_error=False)
    def send(self, control: Any, request: dict[str, Any], force: bool) -> None:
        try:
            problems = control.validate_submit(request)
            if any(p.severity == "error" for p in problems) or (problems and not force):
                self.post_message(self.Submitted(request, None, problems, armed=not force))
                return
            self.sent.append(request)
            result = control.submit(request, force=force)
        except Exception as exc:  # SubmitError carries problems; anything else is one line
            found = getattr(exc, "problems", None) or [Problem("error", f"not sent: {exc}", None)]
            self.post_message(self.Submitted(request, None, list(found)))
            return
        self.post_message(self.Submitted(request, str(result.id), []))

    @on(Submitted)
    def _submitted(self, message: Submitted) -> None:
        self.sending = False
        if message.task_id is None:
            errors = [p for p in message.problems if p.severity == "error"]
            self.armed = message.request if message.armed and not errors else None
            self._show(problems_markup(message.problems, armed=self.armed is not None))
            if errors:
                self.notify(printable(errors[0].message), title="Not sent", severity="error")
            else:
                self.notify("press ctrl+s again to send it anyway", title="Warnings", severity="warning")
            return
        self.armed = None
        self.notify(f"sent {self.task_name} as {message.task_id}", title="Submitted")
        if self.is_current:  # over the form, in this mode: esc comes back to it (left meanwhile: the notice)
            self.app.push_screen(DetailScreen(message.task_id))
