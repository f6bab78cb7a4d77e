"""Stalk's terminal control panel (Textual). The CLI lives here too; the stack lives in `embedded`."""

import os

#: Textual paints at most this many frames a second (its default is 60, read once when it loads). A
#: key's repaint waits for the next frame slot, so at 60 a key waits up to 16.7 ms before its frame even
#: starts; at 120 up to 8.3 ms (bench/panel_load.py under load: key to repaint p99 53 -> 39 ms). Frames
#: are only painted when something changed, so idle costs nothing more. TEXTUAL_FPS overrides it.
FRAME_RATE = 120

os.environ.setdefault("TEXTUAL_FPS", str(FRAME_RATE))
