"""Owlery's stderr log handler: the line format, and decision lines queued by a daemon's
reactor thread and written once per reactor turn (owlery.log explains why).

Loaded by owlery.log.setup() only: importing `logging` costs the in-process LDA's start-up
(owlery/lazylog.py), and the LDA never writes to stderr through a handler.
Tests: tests/core/test_log.py
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Characters that would end a log line or garble a terminal: C0 (but tab and LF), DEL, C1,
# and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NEW_LINE = re.compile(r"\n(?![ \t])")


def one_record(text: str) -> str:
    """A formatted record that no text in it can make look like two: control characters
    become "?", and every line after the first starts with a tab (a traceback stays readable,
    but a line break in a message, say a header a sender wrote, cannot start a line that
    passes for a record of its own)."""
    if text.isprintable():      # the usual case, checked in C
        return text
    return _NEW_LINE.sub("\n\t", _CONTROLS.sub("?", text))


class OneRecordFormatter(logging.Formatter):
    """A formatter whose every record starts exactly one line at its left margin (one_record)."""

    def format(self, record: logging.LogRecord) -> str:
        return one_record(super().format(record))


class StderrFormatter(OneRecordFormatter):
    """The stderr line format; the time text is made once per second, not once per line."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created, int(record.msecs))

    def stamp(self, created: float, msecs: int) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._text},{msecs:03d}"


class StderrHandler(logging.StreamHandler):
    """The stderr handler; it also takes decision lines queued by the reactor thread
    (`queue`), written together once per reactor turn, before any other record."""

    def __init__(self, stream: Any, formatter: StderrFormatter):
        super().__init__(stream)
        self.setFormatter(formatter)
        self.stamp = formatter.stamp
        self._queued: list[str] = []
        self.owner: int | None = None       # the thread whose decisions may be queued
        self._schedule: Callable[[Callable[[], None]], Any] | None = None

    def batch(self, schedule: Callable[[Callable[[], None]], Any] | None) -> None:
        """Queue this thread's decision lines; `schedule(flush)` must run flush soon
        (at the end of the reactor turn). None: write each line at once again."""
        self.flush_queued()
        self._schedule = schedule
        self.owner = threading.get_ident() if schedule else None

    def queue(self, level: int, line: str) -> None:
        now = time.time()
        text = f"{self.stamp(now, int((now % 1) * 1000))} {logging.getLevelName(level)} {line}\n"
        with self.lock:
            self._queued.append(text)
            if len(self._queued) > 1:
                return
        self._schedule(self.flush_queued)    # first line of this turn: flush at its end

    def flush_queued(self) -> None:
        with self.lock:
            if self._queued:
                text, self._queued = "".join(self._queued), []
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except Exception:  # noqa: BLE001 - as logging does: a broken stderr must not stop the daemon
                    self._queued = []

    def emit(self, record: logging.LogRecord) -> None:
        if self._queued:        # called under self.lock (Handler.handle)
            self.flush_queued()
        super().emit(record)

    def close(self) -> None:
        self.flush_queued()
        super().close()



def queue_target(handler: StderrHandler | None, logger: logging.Logger, level: int) -> StderrHandler | None:
    """`handler` (our stderr handler) when it alone would write this record from this thread."""
    if handler is None or handler.owner != threading.get_ident():
        return None
    root = logging.root
    if (len(root.handlers) != 1 or root.handlers[0] is not handler or root.filters
            or not logger.isEnabledFor(level) or level < handler.level or handler.filters):
        return None
    node: Any = logger
    while node is not root:     # nothing between the logger and the root may act on the record
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    return handler
