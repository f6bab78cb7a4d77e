"""Any text the panel shows inside its markup comes out as it went in, and leaves the next tag whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from textual.markup import to_content

from stalk.panel.markup_text import ZERO_WIDTH, escape

PIECES = [*"[]\\/$@=ab ", "[/]", "[b]", "[$error]", "[@click=x]"]
TRICKY = st.lists(st.sampled_from(PIECES)).map("".join)


UNPRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")  # what str.isprintable refuses (but " ")


@given(st.one_of(TRICKY, st.text(st.characters(exclude_categories=UNPRINTABLE))))
def test_escaped_text_reads_back_and_closes_its_tag(text: str) -> None:
    content = to_content(f"[b]{escape(text)}[/] after")
    assert content.plain.replace(ZERO_WIDTH, "") == text.replace(ZERO_WIDTH, "") + " after"
    assert all(span.end <= len(content.plain) - len(" after") for span in content.spans)


@given(st.text(st.characters(categories=UNPRINTABLE)) | TRICKY.map(lambda t: t + "\x1b]0;x\x07\x9b\u202e"))
def test_untrusted_text_reaches_the_markup_printable(text: str) -> None:
    """ESC, BEL, C1, bidi overrides and the like are shown as escapes (issue 26); line breaks stay."""
    plain = to_content(f"[b]{escape(text)}[/]").plain.replace(ZERO_WIDTH, "")
    assert all(c.isprintable() or c == "\n" for c in plain), plain
    assert plain.count("\n") == text.count("\n")


def test_the_key_bars_bracket_keys() -> None:
    assert to_content(f"[b $accent]{escape('[')}[/] Prev  [b $accent]{escape(']')}[/] Next").plain == "[ Prev  ] Next"
