"""What Celery warns or logs in the panel's process (two workers answering with one node name, kombu losing
the broker) shows in Logs, under `stalk`, and never reaches the terminal the panel draws on."""

from __future__ import annotations

import logging
import threading
import warnings

from celery.app.control import flatten_reply
from textual.widgets import OptionList

from stalk.embedded import OWN_LOG, Stack
from stalk.panel.widgets.log_view import LogView
from tests.conftest import make_config

from .conftest import SIZE
from .harness import in_process_app, settle, sync

TWINS = [{"twin@host": {"ok": "pong"}}, {"twin@host": {"ok": "pong"}}]  # one broadcast's replies


@sync
async def test_celery_warnings_and_log_lines_go_to_logs_not_to_the_terminal(tmp_path, capfd):
    stack = Stack(make_config(tmp_path / "data", broker={"mode": "eager"}, beat=False)).start(wait=True, timeout=30)
    shown_before = warnings.showwarning
    try:
        # in process on purpose: what Celery prints in the process of a panel that holds the Stack goes
        # to the stack's own log (a RemoteStack panel holds no Celery: its stack process routes its own)
        app = in_process_app(stack)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            # Celery's own code, on a thread as the panel's broadcasts run: DuplicateNodenameWarning
            thread = threading.Thread(target=flatten_reply, args=(TWINS,))
            thread.start()
            thread.join()
            logging.getLogger("kombu.connection").warning("Connection to broker lost. Trying to re-establish")
            await pilot.press("6")
            for _ in range(50):
                await pilot.pause(0.1)
                if app.screen.current == OWN_LOG:
                    break
            options = app.screen.query_one("#log-processes", OptionList)
            assert OWN_LOG in [options.get_option_at_index(i).id for i in range(options.option_count)]
            lines = [strip.text for strip in app.screen.query_one(LogView).lines]
            assert any("DuplicateNodenameWarning: Received multiple replies from node name: twin@host." in line
                       for line in lines), lines
            assert any("WARNING kombu.connection: Connection to broker lost" in line for line in lines), lines
    finally:
        stack.stop()
    out, err = capfd.readouterr()
    assert "DuplicateNodenameWarning" not in out + err and "Connection to broker lost" not in out + err
    assert warnings.showwarning is shown_before  # the panel gave it back when it ended
    assert not [h for h in logging.getLogger().handlers if type(h).__name__ == "_RouteHandler"]
