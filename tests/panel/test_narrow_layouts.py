"""What fits where: the mode bar's layouts by width and the Dashboard's queue lines (pure)."""

from __future__ import annotations

from textual.markup import to_content

from stalk.panel.widgets.mode_bar import bar_items
from stalk.panel.widgets.queue_depths import depths_markup


def plain_bar(width: int) -> str:
    return "".join(text for text, _style, _mode in bar_items("tasks", width))


def test_the_mode_bar_keeps_every_screen_in_any_width() -> None:
    for width in range(30, 200):
        text = plain_bar(width)
        assert all(f" {n} " in text for n in range(1, 9)) and "? help" in text
        if width >= 78:
            assert len(text) <= width, width
    assert plain_bar(118).startswith("Stalk   1 Dashboard    2 Tasks")  # the 120-column layout
    assert plain_bar(78) == " 1 Dash  2 Tasks  3 Work  4 Beat  5 Quota  6 Logs  7 Submit  8 Hooks  ? help"  # 80 columns


def test_queue_lines_never_wrap() -> None:
    depths = {"cache": 3, "collection": 0, "a-very-long-queue-name-for-[youtube]": 12_345}
    for width in range(20, 90):
        lines = to_content(depths_markup(depths, True, width)).plain.splitlines()[1:]
        assert all(len(line) <= max(width, 4 + 2 + 1 + 7) for line in lines), width
        assert any("12345" in line for line in lines)
    wide = to_content(depths_markup(depths, True, 120)).plain
    assert "a-very-long-queue-name-for-[youtube]" in wide and "█" * 20 in wide
