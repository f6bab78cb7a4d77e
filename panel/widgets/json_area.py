"""A TextArea for a JSON argument: focusing an empty `[]` or `{}` puts the cursor between the brackets."""

from __future__ import annotations

from textual.widgets import TextArea

EMPTY = ("[]", "{}")


class JsonArea(TextArea):
    """TextArea keeps its cursor at the start of the text: typing `2, 3` into `[]` gave `2, 3[]`."""

    def on_focus(self) -> None:
        text = self.text
        if text.strip() in EMPTY:
            row = next(i for i, line in enumerate(text.splitlines()) if line.strip())
            self.move_cursor((row, text.splitlines()[row].index(text.strip()[0]) + 1))
