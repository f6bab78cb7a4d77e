"""Text from tasks, workers and brokers put inside the panel's (Textual) markup."""

from __future__ import annotations

from stalk.embedded import printable

ZERO_WIDTH = "\u200b"


def escape(text: str) -> str:
    """Every `[` escaped, where textual.markup.escape escapes only what looks like a tag and leaves a
    lone one to break the next tag (`'a['` + `'[/]'` showed `a[[/]`: the key bar's `[` key). A trailing
    backslash would escape the closing tag: a zero-width space parts them (Rich's escape doubles it,
    which Textual shows as two). Control characters (ESC, C1, BEL...) are shown as escapes: the text is
    untrusted (stalk.embedded.safe_text), only its line breaks are kept."""
    escaped = printable(text, "\n").replace("[", "\\[")
    return escaped + ZERO_WIDTH if escaped.endswith("\\") else escaped
