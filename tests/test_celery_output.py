"""route_output (embedded/celery_output.py): Celery's warnings and log records go to the sink, a command's own
lines where they went before; everything is given back at restore."""

from __future__ import annotations

import logging
import sys
import warnings

from celery.app.control import flatten_reply

from stalk.embedded import FileSink, route_output


def test_celery_warnings_and_records_go_to_the_sink_and_the_rest_where_it_went(capsys):
    lines: list[str] = []
    terminal = logging.StreamHandler(sys.stderr)  # a logging.basicConfig() in the user's app
    root = logging.getLogger()
    routes_before = [h for h in root.handlers if type(h).__name__ == "_RouteHandler"]
    root.addHandler(terminal)
    shown = warnings.showwarning
    try:
        route = route_output(lines.append)
        flatten_reply([{"twin@host": {}}, {"twin@host": {}}])  # Celery's DuplicateNodenameWarning
        logging.getLogger("kombu.connection").warning("broker lost\nretrying")
        logging.getLogger("stalk.probe").warning("a command's own line")
        route.restore()
    finally:
        root.removeHandler(terminal)
    err = capsys.readouterr().err
    assert route.count == 2 and "DuplicateNodenameWarning: Received multiple replies from node name: twin@host." \
        in lines[0] and lines[0].startswith("WARNING celery: ")
    assert lines[1:] == ["WARNING kombu.connection: broker lost", "retrying"]
    assert "a command's own line" in err and "broker lost" not in err and "Duplicate" not in err
    assert warnings.showwarning is shown and not terminal.filters
    assert [h for h in root.handlers if type(h).__name__ == "_RouteHandler"] == routes_before


def test_a_record_nobody_handles_still_reaches_the_last_resort(capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a command: no handler (pytest has its own)
    lines: list[str] = []
    route = route_output(lines.append)
    try:
        logging.getLogger("stalk.unhandled").warning("still on stderr")
    finally:
        route.restore()
    assert lines == [] and "still on stderr" in capsys.readouterr().err


def test_the_panels_route_takes_everything_and_sets_the_terminal_aside(capsys):
    lines: list[str] = []
    terminal = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(terminal)
    try:
        outer = route_output(lambda line: None)  # a command's route, with the panel's inside it (`demo --ui`)
        route = route_output(lines.append, loggers=None, set_aside_terminal=True)
        assert terminal not in root.handlers
        logging.getLogger("proj.tasks").error("a user's task logs")
        route.restore()
        assert terminal in root.handlers
        outer.restore()
    finally:
        root.removeHandler(terminal)
    assert lines == ["ERROR proj.tasks: a user's task logs"] and "a user's task" not in capsys.readouterr().err


def test_a_file_sink_keeps_lines_until_it_knows_its_file(tmp_path):
    sink = FileSink()
    sink("early")
    assert not tmp_path.joinpath("logs").exists()
    sink.open(tmp_path / "logs" / "commands.log")
    sink("late")
    sink.close()
    text = (tmp_path / "logs" / "commands.log").read_text()
    assert text.index("early") < text.index("late")
    unnamed = FileSink()
    unnamed("only line")
    unnamed.close(fallback=tmp_path / "fallback.log")
    assert "only line" in (tmp_path / "fallback.log").read_text()
    untouched = FileSink()
    untouched.open(tmp_path / "never" / "commands.log")
    untouched.close()
    assert not (tmp_path / "never").exists()
