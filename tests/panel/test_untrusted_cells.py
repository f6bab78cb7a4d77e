"""Names from the broker, the workers and a user's app (worker hostnames, queue names, beat entries, task
ids) reach the panel's tables printable, while the rows keep them as they are (they are keys)."""

from __future__ import annotations

from rich.text import Text

from stalk.panel.beat_rows import BeatRow
from stalk.panel.task_rows import TaskRow
from stalk.panel.widgets.beat_table import beat_cells
from stalk.panel.widgets.queue_table import queue_cells
from stalk.panel.widgets.task_cells import CellStyles, row_segments
from stalk.panel.widgets.worker_table import worker_cells
from stalk.panel.workers_data import QueueRow, WorkerRow

from ..test_untrusted_text import HOSTILE, raw_in

NOW = 1_780_000_000.0


def plain(cells) -> str:
    return " ".join(c.plain if isinstance(c, Text) else str(c) for c in cells)


def test_worker_queue_and_beat_cells_are_printable() -> None:
    worker = WorkerRow(f"w{HOSTILE}@h", True, None, "prefork", 2, 0, 0, 0, (), NOW, (f"q{HOSTILE}",))
    queue = QueueRow(f"q{HOSTILE}", 3, (f"w{HOSTILE}@h",))
    entry = BeatRow(f"e{HOSTILE}", f"t{HOSTILE}", f"every {HOSTILE}", "", None, None, 0, None)
    for text in (plain(worker_cells(worker, NOW, {})), plain(queue_cells(queue, 3, {})),
                 plain(beat_cells(entry, NOW, {}))):
        assert "PWNED" in text and not raw_in(text), text


def test_a_task_id_is_shown_printable_and_kept_as_sent() -> None:
    row = TaskRow(f"id-{HOSTILE}", "SUCCESS", "ev.add", "", "w", "q", NOW, 0.1, 0, None)
    widths = (8, 10, 40, 10, 10, 10, 8, 8, 5, 8)
    shown = "".join(s.text for s in row_segments(row, widths, CellStyles({}), NOW))
    assert "id-\\x1b]0;PWNED" in shown and not raw_in(shown)
    assert row.task_id == f"id-{HOSTILE}"
