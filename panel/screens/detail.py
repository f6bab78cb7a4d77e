"""Task detail: args/kwargs, result, exception and traceback, timeline, retries, parent/children, progress."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..actions import bindings
from ..colours import markup
from ..formatting import bar, clock_time, duration, pretty_json
from ..messages import Notice
from ..task_rows import field, progress_of
from .confirm import ConfirmScreen

TERMINAL = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}


def render_detail(task_id: str, record: Any, events: list[Any], children: list[Any]) -> str:
    """Markup for the whole detail (pure: tests and snapshots rely on it)."""
    if record is None:
        return f"[b]{escape(task_id)}[/b]\n\n[$foreground-muted]not in the event store (yet)[/]"
    state = str(field(record, "state", default="PENDING"))
    lines = [f"[b]{escape(str(field(record, 'name', default='?')))}[/b]  {markup(state)}  "
             f"[$foreground-muted]{escape(task_id)}[/]",
             f"worker {escape(str(field(record, 'worker', 'hostname', default='-')))}  "
             f"queue {escape(str(field(record, 'queue', 'routing_key', default='-')))}  "
             f"retries {field(record, 'retries', default=0)}  "
             f"runtime {duration(field(record, 'runtime'))}"]
    progress = progress_of(record)
    if progress is not None:
        lines.append(f"progress [$primary]{bar(progress, 30)}[/] {progress * 100:.0f}%")
    parent = field(record, "parent_id", "parent")
    if parent:
        lines.append(f"parent {escape(str(parent))}")
    sections = [
        ("args", pretty_json(field(record, "args", default=[]))),
        ("kwargs", pretty_json(field(record, "kwargs", default={}))),
    ]
    if field(record, "result") is not None:
        sections.append(("result", pretty_json(field(record, "result"))))
    if field(record, "exception"):
        sections.append(("exception", str(field(record, "exception"))))
    if field(record, "traceback"):
        sections.append(("traceback", str(field(record, "traceback"))))
    for title, body in sections:
        lines += ["", f"[b]{title}[/b]", escape(body)]
    lines += ["", "[b]timeline[/b]"]
    for event in events:
        kind = str(field(event, "type", "state", default="?"))
        lines.append(f"{clock_time(field(event, 'timestamp', 'ts'))}  {markup(kind.replace('task-', '').upper(), kind)}"
                     f"  {escape(str(field(event, 'hostname', 'worker', default='')))}")
    if not events:
        lines.append("[$foreground-muted]no events[/]")
    if children:
        lines += ["", "[b]children[/b]"]
        for child in children:
            lines.append(f"{escape(str(field(child, 'task_id', 'uuid', 'id')))}  "
                         f"{escape(str(field(child, 'name', default='?')))}  {markup(str(field(child, 'state', default='?')))}")
    return "\n".join(lines)


class DetailScreen(Screen):
    SCOPE = "detail"
    BINDINGS = bindings("detail")
    CSS_PATH = "../styles/detail.tcss"

    class Fetched(Message):
        def __init__(self, record: Any, events: list[Any], children: list[Any]) -> None:
            super().__init__()
            self.record, self.events, self.children = record, events, children

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.record: Any = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-body", Static).update(render_detail(self.task_id, None, [], []))
        self.watch(self.app, "tasks_version", lambda _v: self.fetch())

    @property
    def store(self) -> Any:
        return getattr(self.app.stack, "events", None)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="detail-fetch", exit_on_error=False)
    def fetch(self) -> None:
        store = self.store
        if store is None:
            return
        self.post_message(self.Fetched(store.get(self.task_id), list(store.events_of(self.task_id)),
                                       list(store.children_of(self.task_id))))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        self.record = message.record
        body = render_detail(self.task_id, message.record, message.events, message.children)
        self.query_one("#detail-body", Static).update(body)

    def action_back(self) -> None:
        self.dismiss()

    def _revoke(self, terminate: bool) -> None:
        control = getattr(self.app.stack, "control", None)  # type: ignore[attr-defined]
        if control is None:
            self.notify("no control API on this stack", severity="error")
            return
        verb = "Terminate" if terminate else "Revoke"
        detail = ("SIGTERM the running task; it will not be retried." if terminate
                  else "Workers will discard it; the revoke survives worker restarts.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_stack_action(  # type: ignore[attr-defined]
                    f"{verb.lower()} {self.task_id}", lambda: control.revoke(self.task_id, terminate=terminate),
                    f"{verb.lower()}d {self.task_id}")

        self.app.push_screen(ConfirmScreen(f"{verb} task {self.task_id}?", detail, yes=verb), answered)

    def action_revoke(self) -> None:
        self._revoke(terminate=False)

    def action_terminate(self) -> None:
        self._revoke(terminate=True)

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.task_id)
        self.post_message(Notice(f"copied {self.task_id}"))

    def action_resubmit(self) -> None:
        record = self.record
        if record is None:
            self.notify("nothing to re-submit yet", severity="warning")
            return
        self.app.switch_mode("submit")
        self.app.screen.prefill(str(field(record, "name", default="")), field(record, "args", default=[]),  # type: ignore[attr-defined]
                                field(record, "kwargs", default={}), field(record, "queue", "routing_key"))
