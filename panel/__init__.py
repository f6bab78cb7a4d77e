"""Stalk's terminal control panel (Textual). The CLI lives here too; the stack lives in `embedded`."""
