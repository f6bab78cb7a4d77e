"""TaskRow.of_record (the store's records, read directly) makes the same rows as the generic `of`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stalk.embedded.events import ALL_STATES, TaskRecord
from stalk.panel.task_rows import TaskRow

texts = st.none() | st.sampled_from(["", "()", "[]", "{}", " () ", "[1, 2]", "{'x': 1}"]) | st.text(max_size=90)
stamps = st.none() | st.floats(min_value=0, max_value=2e9)
progress = st.none() | st.dictionaries(st.sampled_from(["current", "total", "x"]),
                                       st.none() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=3))


@st.composite
def records(draw: st.DrawFn) -> TaskRecord:
    return TaskRecord(
        task_id=draw(st.text(min_size=1, max_size=12)), name=draw(st.none() | st.text(max_size=12)),
        state=draw(st.sampled_from(sorted(ALL_STATES))), args=draw(texts), kwargs=draw(texts),
        queue=draw(st.none() | st.text(max_size=6)), routing_key=draw(st.none() | st.text(max_size=6)),
        queue_source=draw(st.sampled_from([None, "route"])),
        worker=draw(st.none() | st.text(max_size=8)), retries=draw(st.integers(0, 9)),
        sent=draw(stamps), received=draw(stamps), updated=draw(stamps), runtime=draw(stamps),
        progress=draw(progress))


@given(records())
def test_of_record_matches_the_generic_path(rec: TaskRecord) -> None:
    assert TaskRow.of(rec) == TaskRow.of(rec.as_dict())  # a dict takes the generic path


def test_of_takes_the_direct_path_for_records() -> None:
    rec = TaskRecord("t-1", name="demo.add", state="STARTED", args="(2, 3)", kwargs="{}", routing_key="slow",
                     sent=5.0, progress={"current": 1, "total": 4})
    row = TaskRow.of(rec)
    assert (row.name, row.args, row.queue, row.worker, row.received, row.progress) == \
        ("demo.add", "(2, 3)", "slow", "-", 5.0, 0.25)


def test_a_queue_inferred_from_the_routes_is_never_shown_as_fact() -> None:
    """plain_workers' last resort (queue_source "route"): the table's cell is dim and ends in "?", the
    detail says where the queue comes from."""
    from rich.segment import Segment

    from stalk.panel.screens.detail import _queue_line
    from stalk.panel.widgets.task_cells import CellStyles, queue_segment

    styles = CellStyles({})
    known, inferred = (TaskRecord("t-1", queue="imports", queue_source=source) for source in (None, "route"))
    assert TaskRow.of(known).queue_inferred is False and TaskRow.of(inferred).queue_inferred is True
    assert queue_segment(TaskRow.of(known), 8, styles) == Segment("imports ")
    assert queue_segment(TaskRow.of(inferred), 8, styles) == Segment("imports?", styles.dim)
    assert queue_segment(TaskRow.of(inferred), 10, styles) == Segment("imports?  ", styles.dim)
    assert queue_segment(TaskRow.of(inferred), 5, styles).text == "imp…?"  # a cut name keeps its mark
    assert "imports?" in _queue_line(inferred) and "inferred from the app's routes" in _queue_line(inferred)
    assert "inferred" not in _queue_line(known) and "imports" in _queue_line(known)
