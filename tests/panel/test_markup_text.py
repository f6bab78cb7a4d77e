"""Any text the panel shows inside its markup comes out as it went in, and leaves the next tag whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from textual.markup import to_content

from stalk.panel.markup_text import ZERO_WIDTH, escape

PIECES = [*"[]\\/$@=ab ", "[/]", "[b]", "[$error]", "[@click=x]"]
TRICKY = st.lists(st.sampled_from(PIECES)).map("".join)


@given(st.one_of(TRICKY, st.text(st.characters(exclude_categories=("Cc", "Cs")))))  # controls: printable()
def test_escaped_text_reads_back_and_closes_its_tag(text: str) -> None:
    content = to_content(f"[b]{escape(text)}[/] after")
    assert content.plain.replace(ZERO_WIDTH, "") == text.replace(ZERO_WIDTH, "") + " after"
    assert all(span.end <= len(content.plain) - len(" after") for span in content.spans)


def test_the_key_bars_bracket_keys() -> None:
    assert to_content(f"[b $accent]{escape('[')}[/] Prev  [b $accent]{escape(']')}[/] Next").plain == "[ Prev  ] Next"
