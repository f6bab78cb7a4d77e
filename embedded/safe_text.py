"""Untrusted text (task args, results, exceptions, names, log lines) made safe for a terminal.

Everything that comes from the broker, the history or a user's app passes through `printable` before it
reaches the panel or a terminal: a control character (ESC, BEL, CR, backspace, C1 such as \\x9b), an odd
space, a bidi override or a lone surrogate is shown as its Python escape (\\x1b, \\u202e, \\ud800), as
`repr` shows it. A display repr of a string stays a valid literal: `'\\x1b'` reads back as ESC.
"""

from __future__ import annotations

from typing import Any

MULTILINE = "\n"  # `keep` for texts laid out over lines (tracebacks)


def printable(text: Any, keep: str = "") -> str:
    """`text` with every character that is not printable (but those in `keep`) shown as an escape."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isprintable():  # the common case, in C
        return text
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def printable_or_none(text: str | None, keep: str = "") -> str | None:
    return None if text is None else printable(text, keep)

