"""One rule for every time Stalk shows (panel/formatting.py): local time, HH:MM:SS, the date in front when
not today; a time kept in another zone converted to local; --json stays ISO 8601 with the offset."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from textual.app import App, ComposeResult

from stalk.embedded.control import BeatEntry
from stalk.embedded.events import TaskRecord
from stalk.panel.beat_rows import when
from stalk.panel.cli.control import _due, _print_entries, _print_sent
from stalk.panel.cli.tasks import iso_times, table_line
from stalk.panel.formatting import clock_time, clock_width, epoch_of, time_text
from stalk.panel.screens.detail import DetailData, render_detail
from stalk.panel.task_rows import TaskRow
from stalk.panel.widgets.task_cells import COLUMNS, CellStyles, column_widths, row_segments
from stalk.panel.widgets.task_table import TaskTable

from .conftest import SIZE
from .harness import FROZEN, sync  # FROZEN: 2026-05-28 20:26:40 UTC

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def in_tokyo() -> Iterator[None]:
    """This machine's local time is Tokyo's (UTC+9) for the test: local means the machine's, not UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    os.environ["TZ"] = before or "UTC"
    time.tzset()


def test_a_time_is_local_hh_mm_ss_with_the_date_when_not_today(in_tokyo) -> None:
    assert clock_time(FROZEN, FROZEN) == "05:26:40"  # 20:26:40 UTC is 05:26:40 on the 29th in Tokyo
    assert clock_time(FROZEN - 6 * 3600, FROZEN - 7 * 3600) == "23:26:40"  # both on the 28th in Tokyo
    assert clock_time(FROZEN - 6 * 3600, FROZEN) == "05-28 23:26:40"  # yesterday's
    assert clock_time(FROZEN - 400 * 86_400, FROZEN) == "2025-04-24 05:26:40"  # another year's
    assert clock_time(FROZEN + 86_400, FROZEN) == "05-30 05:26:40"  # tomorrow's
    assert clock_time(None, FROZEN) == clock_time(0, FROZEN) == "-"
    assert len(clock_time(time.time())) == 8  # without a `now`: the machine's today


def test_the_width_a_column_of_times_needs(in_tokyo) -> None:
    assert clock_width([FROZEN, None, FROZEN - 3600], FROZEN) == 8
    assert clock_width([FROZEN, FROZEN - 86_400], FROZEN) == 14
    assert clock_width([FROZEN - 86_400, FROZEN - 400 * 86_400], FROZEN) == 19
    assert clock_width([], FROZEN) == 8


def test_a_time_kept_in_another_zone_is_shown_in_local_time(in_tokyo) -> None:
    eta = datetime.fromtimestamp(FROZEN, LA)  # the app's timezone: 13:26:40-07:00
    assert time_text(eta.isoformat(), FROZEN) == time_text(eta, FROZEN) == time_text(FROZEN, FROZEN) == "05:26:40"
    assert time_text("2026-05-28T20:26:40", FROZEN) == "05:26:40"  # naive means UTC, as Celery reads an eta
    assert time_text("2026-05-28T20:26:40Z", FROZEN) == "05:26:40"
    assert time_text("soon", FROZEN) == "soon" and time_text(None) == "-"
    assert epoch_of(True) is None and epoch_of("") is None


def test_the_task_detail_shows_eta_and_expires_in_local_time(in_tokyo) -> None:
    rec = TaskRecord("e-1", "demo.add", "RECEIVED", received=FROZEN - 60,
                     eta=datetime.fromtimestamp(FROZEN + 120, LA).isoformat(),
                     expires=datetime.fromtimestamp(FROZEN + 86_400, UTC).isoformat())
    body = render_detail("e-1", DetailData(rec), FROZEN)
    assert "received[/] 05:25:40" in body and "eta[/] 05:28:40" in body and "expires[/] 05-30 05:26:40" in body
    assert "-07:00" not in body and "+00:00" not in body


def test_the_tasks_table_widens_its_time_column_for_a_date() -> None:
    row = TaskRow("t-1", "SUCCESS", "demo.add", "", "w", "default", FROZEN - 86_400, 0.1, 0, None)
    narrow, dated = column_widths(140), column_widths(140, 14)
    assert (narrow[6], dated[6]) == (8, 14) and dated[3] < narrow[3]  # args gives the room
    cells = "".join(s.text for s in row_segments(row, dated, CellStyles({}), FROZEN))
    assert " 05-27 20:26:40 " in cells
    today = "".join(s.text for s in row_segments(row._replace(received=FROZEN), narrow, CellStyles({}), FROZEN))
    assert " 20:26:40 " in today


def test_beat_next_run_reads_in_local_time_with_its_date() -> None:
    assert when(FROZEN + 10 * 3600, FROZEN) == "05-29 06:26:40 (in 10h)"
    assert when(FROZEN + 90, FROZEN) == "20:28:10 (in 1m30s)"


# -- the CLI's text output: the same rule; --json stays ISO 8601 with the offset ------------------------

def test_beat_entries_print_local_times_not_the_apps_zone(in_tokyo, capsys) -> None:
    now = time.time()
    nxt = datetime.fromtimestamp(now + 3600, LA)  # the app's timezone
    last = datetime.fromtimestamp(now - 2 * 86_400, LA)
    _print_entries([BeatEntry("nightly", "app.cleanup", "crontab 1 0 * * * PDT", last_run=last, next_run=nxt,
                              total_run_count=3)])
    out = capsys.readouterr().out
    local_next = datetime.fromtimestamp(now + 3600).strftime("%H:%M:%S")
    assert local_next in out and nxt.strftime("%H:%M:%S") not in out.replace(local_next, "")
    assert datetime.fromtimestamp(now - 2 * 86_400).strftime("%m-%d %H:%M:%S") in out


def test_stalk_tasks_prints_local_times_and_json_keeps_iso_with_offset(in_tokyo) -> None:
    row = {"task_id": "t-1", "state": "PURGED", "name": "demo.add", "received": None, "sent": FROZEN,
           "runtime": None, "retries": 0, "exception": "purged from queue q at ...", "eta": "2026-05-28T13:26:40-07:00"}
    line = table_line(row, FROZEN, 8)
    assert "  05:26:40  " in line and "PURGED" in line
    assert "  05-29 05:26:40  " in table_line(row, FROZEN + 86_400, 14)
    listed = iso_times(row)
    assert listed["sent"] == "2026-05-29T05:26:40+09:00" and listed["eta"] == row["eta"]
    assert datetime.fromisoformat(listed["sent"]).timestamp() == FROZEN
    json.dumps(listed)


def test_stalk_tasks_marks_retried_and_requeued_tasks_and_json_lists_their_attempts_in_iso(in_tokyo) -> None:
    attempts = [{"kind": "retry", "at": FROZEN, "worker": "w1", "reason": "E('\x1b[2J')"},
                {"kind": "requeued", "at": FROZEN + 1, "worker": "w2", "reason": "requeued: worker w2 (pid 9) died"},
                {"kind": "retry", "at": None, "worker": None, "reason": None}]
    row = {"task_id": "t-1", "state": "SUCCESS", "name": "proj.flaky", "received": FROZEN, "sent": FROZEN,
           "runtime": 0.5, "retries": 2, "result": "2", "attempts": attempts}
    line = table_line(row, FROZEN, 8)
    assert line.endswith("  requeued 1x retried 2x  2") and line.isprintable(), line
    assert table_line({**row, "attempts": []}, FROZEN, 8).endswith("      2  2")
    listed = iso_times(row)
    assert [a["at"] for a in listed["attempts"]] == ["2026-05-29T05:26:40+09:00", "2026-05-29T05:26:41+09:00", None]
    assert listed["attempts"][0]["reason"] == attempts[0]["reason"]  # JSON escapes it: data as stored
    json.dumps(listed)


def test_submit_says_when_a_delayed_task_runs_in_local_time(in_tokyo, capsys) -> None:
    eta = datetime.fromtimestamp(time.time() + 600, LA)
    due = _due({"eta": eta})
    assert due is not None and due.utcoffset() == timedelta(hours=9) and due == eta
    assert _due({}) is None
    countdown = _due({"countdown": 60})
    assert countdown is not None and countdown.utcoffset() == timedelta(hours=9)
    _print_sent({"name": "demo.add", "task_id": "t-1", "queue": "default", "eta": due.isoformat()}, wait=False)
    assert capsys.readouterr().out.strip() == (
        f"sent demo.add [t-1] to queue default, due {datetime.fromtimestamp(eta.timestamp()):%H:%M:%S}")


class TableApp(App):
    clock = staticmethod(lambda: FROZEN)  # the panel's clock (StalkApp.clock)

    def compose(self) -> ComposeResult:
        yield TaskTable()


@sync
async def test_the_live_table_shows_dates_for_rows_of_another_day_and_only_then() -> None:
    app = TableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(TaskTable)
        today = [TaskRow(f"t-{i}", "SUCCESS", "demo.add", "", "w", "default", FROZEN - i, 0.1, 0, None)
                 for i in range(3)]
        table.show(today, app.get_css_variables())
        await pilot.pause()
        assert "20:26:40" in _line(table, 1) and "05-27" not in _line(table, 1)
        assert table._widths[COLUMNS.index("received")] == 8
        table.show([*today, today[0]._replace(task_id="old", received=FROZEN - 86_400)], app.get_css_variables())
        await pilot.pause()
        assert table._widths[COLUMNS.index("received")] == 14
        assert "05-27 20:26:40" in _line(table, 4) and " 20:26:40 " in _line(table, 1)
        assert "received" in _line(table, 0)


def _line(table: TaskTable, y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))
