"""Task detail: args/kwargs, result, exception and traceback, timeline, retries, parent/children/group,
progress; revoke or terminate (confirmed), re-submit, copy id. Re-read whenever the store changes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from stalk.embedded.events import ROUTE_SOURCE, RUNNING
from stalk.panel.actions import bindings
from stalk.panel.colours import markup
from stalk.panel.formatting import bar, clock_time, duration, pretty_repr, preview, time_text
from stalk.panel.markup_text import escape
from stalk.panel.messages import Notice
from stalk.panel.screens.confirm import ConfirmScreen
from stalk.panel.submit_form import json_from_repr
from stalk.panel.task_rows import DONE_STATES, progress_of
from stalk.panel.widgets.key_bar import KeyBar
from stalk.panel.widgets.mode_bar import ModeBar
from stalk.panel.widgets.stack_banner import StackBanner

GROUP_EVERY = 1.0  # s between group progress queries (the result backend) while a detail is open
EVENT_STATES = {"task-sent": "PENDING", "task-received": "RECEIVED", "task-started": "STARTED",
                "task-progress": "PROGRESS", "task-retried": "RETRY", "task-succeeded": "SUCCESS",
                "task-failed": "FAILURE", "task-revoked": "REVOKED", "task-rejected": "REJECTED",
                "task-lost": "LOST", "task-purged": "PURGED", "task-requeued": "REQUEUED"}


@dataclass
class DetailData:
    """Everything the detail shows, read in one worker pass (tests build it directly)."""

    record: Any = None
    events: list[Any] = field(default_factory=list)
    children: list[Any] = field(default_factory=list)
    parent: Any = None
    groups: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # group id -> (done, total)
    revoke: Any = None  # Stalk's stored revoke of an unfinished task (embedded.control RevokeEntry)


def read_detail(task_id: str, store: Any, control: Any, cache: dict[str, tuple] | None = None) -> DetailData:
    """One consistent read of the store (and the control API for group progress, asked at most once per
    GROUP_EVERY seconds per group when a `cache` is kept: the store may change ten times a second)."""
    record = store.get(task_id)
    if record is None:
        return DetailData()
    children = sorted(store.children_of(task_id), key=lambda r: (r.sent or r.received or 0.0, r.task_id))
    parent = store.get(record.parent_id) if record.parent_id else None
    groups: dict[str, tuple[int, int] | None] = {}
    for group_id in dict.fromkeys([record.group_id, *(c.group_id for c in children)]):
        if not group_id:
            continue
        members = [c for c in children if c.group_id == group_id]
        seen = tuple(m.state for m in members)  # a member moving asks again at once
        hit = cache.get(group_id) if cache is not None else None
        if hit is not None and hit[1] == seen and time.monotonic() - hit[0] < GROUP_EVERY:
            groups[group_id] = hit[2]
            continue
        groups[group_id] = group_progress(group_id, control, members)
        if cache is not None:
            cache[group_id] = (time.monotonic(), seen, groups[group_id])
    revoke = None
    if record.state not in DONE_STATES and control is not None:
        revoke = control.revoke_entry(task_id)
    return DetailData(record, list(store.events_of(task_id)), children, parent, groups, revoke)


def _revoke_line(rec: Any, revoke: Any, now: float | None = None) -> str:
    """A revoke the workers have not acted on yet: Celery reports a revoked task queued with an eta
    (or behind others) only when it comes due, and one revoked while running only if terminated."""
    asked = f"[$warning]revoke requested {clock_time(revoke.revoked_at, now)}[/]"
    if revoke.terminate:
        return f"{asked}  [$foreground-muted]{escape(revoke.signal)} sent to the task if it is running[/]"
    if rec.state in RUNNING:
        return f"{asked}  [$foreground-muted]it was already running: it runs to its end (t terminates it)[/]"
    when = f"it comes due (eta {escape(time_text(rec.eta, now))})" if rec.eta else "they take it from the queue"
    return f"{asked}  [$foreground-muted]workers discard it when {when}[/]"


def group_progress(group_id: str, control: Any, members: list[Any]) -> tuple[int, int] | None:
    """(done, total) from the result backend, else from the members this store has seen."""
    try:
        return tuple(control.group_progress(group_id))
    except Exception:  # unsaved group, eager backend, broker down: count what the store knows
        if not members:
            return None
        return sum(1 for m in members if m.state in DONE_STATES), len(members)


def _line(label: str, value: Any) -> str:
    return f"[$foreground-muted]{label}[/] {escape(str(value))}"


def _queue_line(rec: Any) -> str:
    if getattr(rec, "queue_source", None) == ROUTE_SOURCE and rec.queue:
        return (_line("queue", f"{rec.queue}?") + " [$foreground-muted](inferred from the app's routes: "
                "the worker did not say)[/]")
    return _line("queue", rec.queue or rec.routing_key or "-")


def _ref(task_id: str, record: Any) -> str:
    if record is None:
        return f"{escape(task_id)} [$foreground-muted](not in the store)[/]"
    return f"{escape(task_id)}  {escape(record.name or '?')}  {markup(record.state)}"


def _header(task_id: str, rec: Any, now: float | None = None) -> list[str]:
    # a retried task: its first send, its last attempt's receive and start (a retry sends a new message)
    retried = bool(rec.retries or rec.attempts or rec.retried)
    sent, received, started = ("first sent", "last received", "last started") if retried else (
        "sent", "received", "started")
    lines = [f"[b]{escape(rec.name or '?')}[/b]  {markup(rec.state)}  [$foreground-muted]{escape(task_id)}[/]",
             "  ".join([_line("worker", rec.worker or "-"), _queue_line(rec),
                        _line("priority", "-" if rec.priority is None else rec.priority),
                        _line("retries", rec.retries), _line("runtime", duration(rec.runtime))]),
             "  ".join([_line(sent, clock_time(rec.sent, now)), _line(received, clock_time(rec.received, now)),
                        _line(started, clock_time(rec.started, now)),
                        _line("finished", clock_time(rec.finished, now))])]
    extra = [_line(k, v) for k, v in (("replaces", rec.replaced), ("eta", rec.eta and time_text(rec.eta, now)),
                                      ("expires", rec.expires and time_text(rec.expires, now))) if v]
    if extra:
        lines.append("  ".join(extra))
    fraction = progress_of(rec, finished_too=True)
    if fraction is not None:
        status = (rec.progress or {}).get("status")
        current, total = (rec.progress or {}).get("current"), (rec.progress or {}).get("total")
        last = " [$foreground-muted](last report)[/]" if rec.state in DONE_STATES else ""
        lines.append(f"progress [$primary]{bar(fraction, 30)}[/] {fraction * 100:.0f}%  "
                     f"{escape(str(current))}/{escape(str(total))}"
                     + (f"  {escape(preview(status, 60))}" if status else "") + last)
    return lines


def _relations(rec: Any, data: DetailData) -> list[str]:
    lines = []
    if rec.parent_id:
        lines.append("parent   " + _ref(rec.parent_id, data.parent))
    if rec.root_id and rec.root_id not in (rec.parent_id, rec.task_id):
        lines.append("root     " + escape(rec.root_id))
    if rec.group_id:
        lines.append(f"group    {escape(rec.group_id)}  {_group_text(data.groups.get(rec.group_id))}")
    if data.children:
        lines += ["", f"[b]children[/b] ({len(data.children)})"] if lines else [f"[b]children[/b] ({len(data.children)})"]
        for group_id in dict.fromkeys(c.group_id for c in data.children):
            members = [c for c in data.children if c.group_id == group_id]
            if group_id:
                lines.append(f"group {escape(group_id)}  {_group_text(data.groups.get(group_id))}")
            lines += [("  " if group_id else "") + _ref(c.task_id, c) for c in members]
    return lines


def _group_text(progress: tuple[int, int] | None) -> str:
    if progress is None:
        return "[$foreground-muted]progress unknown[/]"
    done, total = progress
    fraction = done / total if total else 0.0
    return f"[$primary]{bar(fraction, 20)}[/] {done}/{total} done"


def _timeline(events: list[Any], now: float | None = None) -> list[str]:
    lines = ["", "[b]timeline[/b]"]
    for event in events:
        state = EVENT_STATES.get(event.type, event.type.replace("task-", "").upper())
        note = {k: v for k, v in (event.fields or {}).items() if v not in (None, "", {})}
        if isinstance(note.get("runtime"), (int, float)):
            note["runtime"] = duration(note["runtime"])  # as the header says it: 63ms, not 0.0628526...
        text = "  ".join(f"{k}={preview(v, 50)}" for k, v in note.items())
        lines.append(f"{clock_time(event.timestamp, now)}  {markup(state, f'{state:<9}')}  "
                     f"{escape(event.hostname or '')}  [$foreground-muted]{escape(text)}[/]")
    if not events:
        lines.append("[$foreground-muted]no events[/]")
    return lines


def _attempts(rec: Any, now: float | None = None) -> list[str]:
    if not rec.attempts:
        return []
    lines = ["", f"[b]retries[/b] ({len(rec.attempts)})"]
    for i, (when, worker, exception) in enumerate(rec.attempts, 1):
        lines.append(f"#{i}  {clock_time(when, now)}  {escape(worker or '-')}  [$error]{escape(preview(exception, 80))}[/]")
    return lines


def render_detail(task_id: str, data: DetailData, now: float | None = None) -> str:
    """Markup for the whole detail (pure: tests and snapshots rely on it). `now`: the panel's clock
    (times of another day show their date)."""
    rec = data.record
    if rec is None:
        return f"[b]{escape(task_id)}[/b]\n\n[$foreground-muted]not in the event store (yet)[/]"
    lines = _header(task_id, rec, now)
    if data.revoke is not None:
        lines.append(_revoke_line(rec, data.revoke, now))
    sections = [("args", pretty_repr(rec.args or "()")), ("kwargs", pretty_repr(rec.kwargs or "{}"))]
    if rec.result is not None:
        sections.append(("result", pretty_repr(rec.result)))
    if rec.exception:
        title = "exception" if rec.state in ("FAILURE", "RETRY") else "reason"
        sections.append((title, rec.exception))
    for title, body in sections:
        colour = "$error" if title == "exception" else "$foreground"
        lines += ["", f"[b]{title}[/b]", f"[{colour}]{escape(body)}[/]"]
    relations = _relations(rec, data)
    if relations:
        lines += ["", *relations]
    lines += _attempts(rec, now) + _timeline(data.events, now)
    if rec.traceback:
        lines += ["", "[b]traceback[/b]", f"[$text-muted]{escape(rec.traceback.rstrip())}[/]"]
    return "\n".join(lines)


class DetailScreen(Screen):
    SCOPE = "detail"
    BINDINGS = bindings("detail")
    CSS_PATH = "../styles/detail.tcss"

    class Fetched(Message):
        def __init__(self, data: DetailData) -> None:
            super().__init__()
            self.data = data

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.data = DetailData()
        self._groups: dict[str, tuple] = {}  # group id -> (when asked, member states, progress)

    @property
    def record(self) -> Any:
        return self.data.record

    def compose(self) -> ComposeResult:
        yield ModeBar(self.app.current_mode)  # the mode it was opened from; number keys still switch
        yield StackBanner()
        with VerticalScroll():
            yield Static(render_detail(self.task_id, self.data, self._now()), id="detail-body")
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "tasks_version", self._tasks_version_changed)

    def _tasks_version_changed(self, _version: int) -> None:  # a watcher returns None (fetch returns its Worker)
        self.fetch()

    @property
    def stack(self) -> Any:
        return getattr(self.app, "stack", None)

    @work(thread=True, exclusive=True, group="detail-fetch", exit_on_error=False)
    def fetch(self) -> None:
        store = getattr(self.stack, "events", None)
        if store is not None:
            control = getattr(self.stack, "control", None)
            self.post_message(self.Fetched(read_detail(self.task_id, store, control, self._groups)))

    def _refetch(self) -> None:
        if self.is_attached:  # the user may have left the detail while the revoke was sent
            self.fetch()

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        self.data = message.data
        self.query_one("#detail-body", Static).update(render_detail(self.task_id, message.data, self._now()))

    def _now(self) -> float:
        return getattr(self.app, "clock", time.time)()

    def action_back(self) -> None:
        self.dismiss()

    def _revoke(self, terminate: bool) -> None:
        control = getattr(self.stack, "control", None)
        if control is None:
            self.notify("no control API on this stack", severity="error")
            return
        state = getattr(self.record, "state", None)
        if state in DONE_STATES:
            self.notify(f"{self.task_id} is already {state}; nothing to revoke", severity="warning")
            return
        verb = "Terminate" if terminate else "Revoke"
        detail = ("SIGTERM the running task; it will not be retried." if terminate
                  else "Workers will discard it if it has not started; the revoke survives worker restarts.")

        def send() -> None:  # on a thread
            control.revoke(self.task_id, terminate=terminate)
            self.app.call_from_thread(self._refetch)  # the stored revoke shows before any event comes

        def answered(yes: bool | None) -> None:
            if yes:
                past = "terminated" if terminate else "revoked"
                self.app.run_stack_action(  # type: ignore[attr-defined]
                    f"{verb.lower()} {self.task_id}", send, f"{past} {self.task_id}")

        self.app.push_screen(ConfirmScreen(f"{verb} task {self.task_id}?", detail, yes=verb), answered)

    def action_revoke(self) -> None:
        self._revoke(terminate=False)

    def action_terminate(self) -> None:
        self._revoke(terminate=True)

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.task_id)
        self.post_message(Notice(f"copied {self.task_id}"))

    async def action_resubmit(self) -> None:
        record = self.record
        if record is None:
            self.notify("nothing to re-submit yet", severity="warning")
            return
        args, args_problem = json_from_repr("args", record.args, list)
        kwargs, kwargs_problem = json_from_repr("kwargs", record.kwargs, dict)
        if self.app.current_mode == "submit":
            self.dismiss()  # opened over the Submit form: back to it
        else:
            await self.app.switch_mode("submit")
        queue = None if record.queue_source == ROUTE_SOURCE else record.queue  # inferred: routed again
        submit: Any = self.app.screen
        # after the ScreenResume just posted to it (its auto-focus), not before
        submit.call_later(submit.prefill, record.name or "", args, kwargs, queue)
        for problem in (args_problem, kwargs_problem):
            if problem:
                self.app.notify(problem, title="Re-submit", severity="warning", timeout=10)
