"""The keyed tables' flexible columns: they share what a wide terminal leaves (each up to its cap) and go
back to their widths when it narrows; names that were cut at 120 columns are whole at 160."""

from __future__ import annotations

from textual.app import App, ComposeResult

from stalk.panel.beat_rows import BeatRow
from stalk.panel.widgets.beat_table import BeatTable
from stalk.panel.widgets.keyed_table import fitted_widths
from stalk.panel.widgets.recent_failures import RecentFailures

from .harness import sync

LONG = "collect-high-frequency-plugins"


def test_spare_width_goes_to_flex_columns_up_to_their_caps() -> None:
    columns, widths = ("a", "b", "c"), (10, 10, 10)
    assert fitted_widths(columns, widths, {"a": 15, "c": None}, 60) == (15, 10, 29)  # 24 spare: 5 + 19
    assert fitted_widths(columns, widths, {"a": 15, "c": 12}, 80) == (15, 10, 12)  # both capped: rest unused
    assert fitted_widths(columns, widths, {"a": None, "c": None}, 41) == (13, 10, 12)  # odd cell to the first
    assert fitted_widths(columns, widths, {}, 80) == widths
    assert fitted_widths(columns, widths, {"a": None}, 20) == widths  # narrow: never cut, the table scrolls


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield BeatTable()

    def on_mount(self) -> None:
        row = BeatRow(name=LONG, task="jobs.collect_high_frequency_plugins", schedule="cron */15 * * * *",
                      args='["rss", "atom"]', queue=None, last_run=None, next_run=None, total=0)
        self.query_one(BeatTable).show_entries([row], 0.0, {})


def entry_width(app: App) -> int:
    return app.query_one(BeatTable).columns["entry"].width  # type: ignore[index]


def first_row(app: App) -> str:
    table = app.query_one(BeatTable)
    return "".join(segment.text for segment in table.render_line(1))


@sync
async def test_a_wide_terminal_shows_whole_names_and_a_narrow_one_gives_the_width_back() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        assert entry_width(app) == 20 and LONG not in first_row(app)
        await pilot.resize_terminal(170, 10)
        await pilot.pause()
        assert entry_width(app) == 36
        assert LONG in first_row(app) and "jobs.collect_high_frequency_plugins" in first_row(app)
        await pilot.resize_terminal(100, 10)
        await pilot.pause()
        assert entry_width(app) == 20


class MarkupTables(App):
    """Cells hold what the user's app says: a task name or quota key may hold `[/]`, which a DataTable
    parses as markup in a str cell (MarkupError while rendering: the panel died)."""

    def compose(self) -> ComposeResult:
        yield BeatTable()
        yield RecentFailures()

    def on_mount(self) -> None:
        row = BeatRow(name="odd", task="jobs.[/]odd", schedule="every [b]5[/b] s", args="[]", queue=None,
                      last_run=None, next_run=None, total=0)
        self.query_one(BeatTable).show_entries([row], 0.0, {})
        failure = {"task_id": "t1", "name": "jobs.[/]odd", "exception": "E('[/]')", "finished": 0.0}
        self.query_one(RecentFailures).show([failure])


@sync
async def test_table_cells_are_plain_text_not_markup() -> None:
    app = MarkupTables()
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        app.query_one(BeatTable).update_cell("odd", "task", "jobs.[/]again")
        await pilot.pause()
        beat = "".join(segment.text for segment in app.query_one(BeatTable).render_line(1))
        failures = "".join(segment.text for segment in app.query_one(RecentFailures).render_line(1))
        assert "jobs.[/]again" in beat and "every [b]5[/b] s" in beat
        assert "jobs.[/]odd" in failures
