"""Where Celery's own output goes in Stalk's processes: never onto the panel, never into a command's output.

Celery's client side speaks through Python warnings (DuplicateNodenameWarning, from every broadcast whose
replies share a node name: two workers started with the same `-n`) and through its loggers (and kombu's,
amqp's, redis-py's...), which with no handler configured reach logging's last resort: stderr. In the panel
that is the terminal Textual draws on; in a command, its output.

`route_output(sink)` sends all of it to `sink`, a line at a time, until `restore()`:

- every warning shown through `warnings.showwarning` (the module's filters still decide which are shown);
- every log record of `loggers` that reaches the root logger (`loggers=None`: every record). Records of
  other loggers go where they went before (logging's last resort when nothing else takes them): a
  command's own lines stay on its stderr.
- the root logger's handlers that write to the terminal (a `logging.basicConfig()` in the user's app)
  leave routed records alone meanwhile; with `set_aside_terminal=True` (the panel) they are set aside.

The panel's sink is the stack's own log (Stack.note: the Logs screen's OWN_LOG source); a command's is a
`FileSink` under the data dir's logs/, and the command says in one line how many lines went there.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from stalk.embedded.supervisor.logs import LogRing

#: What Celery's client side logs through (py.warnings: logging.captureWarnings, should the app turn it on).
CELERY_LOGGERS = ("celery", "kombu", "amqp", "billiard", "redis", "vine", "py.warnings")
FORMAT = "%(levelname)s %(name)s: %(message)s"

Sink = Callable[[str], None]


class OutputRoute:
    """One routing of warnings and log records to a sink; `install()` and `restore()` (nested routes
    restore in reverse order). `count`: the warnings and records sent to the sink so far."""

    def __init__(self, sink: Sink, loggers: Iterable[str] | None = CELERY_LOGGERS,
                 set_aside_terminal: bool = False) -> None:
        self.sink = sink
        self.loggers = tuple(loggers) if loggers is not None else None
        self.set_aside_terminal = set_aside_terminal
        self.count = 0
        self._handler = _RouteHandler(self)
        self._shown: Any = None
        self._aside: list[logging.Handler] = []
        self._filtered: list[logging.Handler] = []
        self._not_routed = _NotRouted(self)
        self._busy = threading.local()  # a sink that logs must not loop back here

    def install(self) -> OutputRoute:
        root = logging.getLogger()
        self._shown = warnings.showwarning
        warnings.showwarning = self._showwarning
        # An enclosing route's handler is set aside too: the newest route takes everything it routes.
        self._aside = [h for h in root.handlers if isinstance(h, _RouteHandler)
                       or (self.set_aside_terminal and _writes_to_terminal(h))]
        for handler in self._aside:
            root.removeHandler(handler)
        self._filtered = [h for h in root.handlers if _writes_to_terminal(h)]
        for handler in self._filtered:
            handler.addFilter(self._not_routed)
        root.addHandler(self._handler)
        return self

    def restore(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        for handler in self._filtered:
            handler.removeFilter(self._not_routed)
        self._filtered = []
        for handler in self._aside:
            root.addHandler(handler)
        self._aside = []
        if warnings.showwarning == self._showwarning:  # a later route still installed keeps its own
            warnings.showwarning = self._shown

    def routes(self, name: str) -> bool:
        return self.loggers is None or any(name == n or name.startswith(n + ".") for n in self.loggers)

    def send(self, text: str) -> None:
        if getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            self.count += 1
            for line in text.splitlines() or [""]:
                self.sink(line)
        except Exception:  # a sink that fails (a full disk) loses the line, never the caller's work
            pass
        finally:
            self._busy.on = False

    def _showwarning(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: TextIO | None = None, line: str | None = None) -> None:
        if file is not None:  # shown to a stream named on purpose: not ours to reroute
            self._shown(message, category, filename, lineno, file, line)
            return
        origin = (getattr(category, "__module__", "") or "").split(".", 1)[0] or "python"
        if origin == "builtins":
            origin = Path(filename).stem
        text = " ".join(str(message).split())
        self.send(f"WARNING {origin}: {category.__name__}: {text} ({filename}:{lineno})")


class _NotRouted(logging.Filter):
    """On a handler that writes to the terminal: leaves the route's records to the route."""

    def __init__(self, route: OutputRoute) -> None:
        super().__init__()
        self.route = route

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.route.routes(record.name)


class _RouteHandler(logging.Handler):
    """On the root logger: routed records to the route's sink; the others where they would have gone."""

    def __init__(self, route: OutputRoute) -> None:
        super().__init__(logging.NOTSET)
        self.route = route
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if self.route.routes(record.name):
            try:
                text = self.format(record)
            except Exception:
                text = f"{record.levelname} {record.name}: {record.msg!r}"
            self.route.send(text)
        elif (logging.lastResort is not None and record.levelno >= logging.lastResort.level
              and not self._handled_elsewhere(record)):
            logging.lastResort.handle(record)

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        """Whether a handler other than this one saw `record` (logging's last resort is for when none did)."""
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    if stream in (sys.__stderr__, sys.__stdout__, sys.stderr, sys.stdout):
        return True
    try:
        return bool(stream is not None and stream.isatty())
    except Exception:
        return False


def route_output(sink: Sink, loggers: Iterable[str] | None = CELERY_LOGGERS,
                 set_aside_terminal: bool = False) -> OutputRoute:
    """Route warnings and `loggers`' records (None: all) to `sink` until the route's `restore()`."""
    return OutputRoute(sink, loggers, set_aside_terminal).install()


class FileSink:
    """Lines for a log file that may not be known yet: kept until `open(path)` names it, then appended
    there (rotated as the children's logs are). Nothing is created until there is a line to write."""

    def __init__(self, max_bytes: int = 1_000_000, backups: int = 2) -> None:
        self.path: Path | None = None
        self.error: str | None = None  # why the file could not be written, if it could not
        self._pending: list[str] = []
        self._ring: LogRing | None = None
        self._limits = (max_bytes, backups)
        self._lock = threading.Lock()

    def open(self, path: Path) -> None:
        """Write to `path` from now on (until a line has been written: a later call may name another)."""
        with self._lock:
            if self._ring is None:
                self.path = path
        self._flush()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
        if self.path is not None:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            if self.path is None or not self._pending:
                return
            if self._ring is None and self.error is None:
                try:
                    self._ring = LogRing(self.path.stem, 1, self.path, *self._limits)
                except OSError as exc:
                    self.error = f"{type(exc).__name__}: {exc}"
            if self._ring is None:
                return
            lines, self._pending = self._pending, []
        for line in lines:
            self._ring.append(line)

    def close(self, fallback: Path | None = None) -> None:
        """Write what is pending (to `fallback` if no path was named) and close the file."""
        if self.path is None and fallback is not None:
            self.open(fallback)
        self._flush()
        if self._ring is not None:
            self._ring.close()
