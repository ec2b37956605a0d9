"""Logging: one Postfix-style line per decision, to stderr or syslog (mail facility).

`decision("policyd", queue_id, "reject", reply=..., client=..., **fields)` writes
`policyd: 4F3A21C: reject: RCPT from host[addr]: 450 4.7.1 ...; from=<a> to=<b> check=greylist`
(the queue id is left out while Postfix has not assigned one). Products log every
decision through `decision()` so the format stays greppable in one place.
A daemon's reactor thread can hand its decision lines to the stderr handler directly
(`batch_decisions`): they are formatted as the handler would and written once per reactor
turn, because at tens of thousands of decisions a second the logging machinery and a
write per line were a third of the policy daemon's CPU. Any other record, from any
thread, writes what is queued first, so the order of lines is kept.
Talks to: stderr or /dev/log. Tests: tests/core/test_log.py
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from owlery.settings import Str, choice, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

LOG_TARGET = setting("log_target", choice("stderr", "syslog"), "stderr",
                     "Where log lines go: stderr (journald picks it up under systemd) or syslog.")
LOG_SYSLOG_SOCKET = setting("log_syslog_socket", Str, "/dev/log",
                            "Syslog socket used when log_target = \"syslog\" (facility mail).")
LOG_LEVEL = setting("log_level", choice("debug", "info", "warning", "error"), "info",
                    "Lowest level written. Decisions are info; backend trouble is warning.")

_configured = False


class _Formatter(logging.Formatter):
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


class _StderrHandler(logging.StreamHandler):
    """The stderr handler; it also takes decision lines queued by the reactor thread
    (`queue`), written together once per reactor turn, before any other record."""

    def __init__(self, stream: Any, formatter: _Formatter):
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


_stderr: _StderrHandler | None = None


def batch_decisions(schedule: Callable[[Callable[[], None]], Any] | None) -> None:
    """From a daemon's reactor thread: its decision lines go to stderr in one write per
    reactor turn; `schedule(fn)` runs fn at the end of the turn (reactor.callLater(0, fn)).
    No effect when logging to syslog or when the handlers are not ours (tests)."""
    if _stderr is not None:
        _stderr.batch(schedule)


def _queue_target(logger: logging.Logger, level: int) -> _StderrHandler | None:
    """Our stderr handler when it alone would write this record from this thread."""
    handler = _stderr
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


def _fmt_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


_FIELD_NAMES = {"from_": "from", "rcpt": "to", "sender": "from", "recipient": "to", "from": "from", "to": "to"}


def format_decision(program: str, queue_id: str | None, action: str, *, head: str = "",
                    reply: Any = None, **fields: Any) -> str:
    """Build the decision line; pure so tests can check the exact text."""
    line = _build(str, program, queue_id, action, head, reply, fields)
    # Keep one line per decision whatever the data: control characters would split it.
    # One check of the whole line in C; the field-by-field repair only when it fails.
    return line if line.isprintable() else _build(_fmt_value, program, queue_id, action, head, reply, fields)


def _build(text: Callable[[Any], str], program: str, queue_id: str | None, action: str, head: str,
           reply: Any, fields: dict[str, Any]) -> str:
    line = f"{program}: {text(queue_id)}: {action}:" if queue_id else f"{program}: {action}:"
    if head:
        line += f" {text(head)}:"
    if reply is not None:
        line += f" {text(reply)};"
    kv = []
    for key, value in fields.items():
        if value is None:
            continue
        name = _FIELD_NAMES.get(key)
        kv.append(f"{name}=<{text(value)}>" if name else f"{key}={text(value)}")
    if kv:
        line += " " + " ".join(kv)
    return line.rstrip(";: ")


def decision(program: str, queue_id: str | None, action: str, *, head: str = "",
             reply: Any = None, level: int = logging.INFO, **fields: Any) -> str:
    """Log one decision line and return it."""
    line = format_decision(program, queue_id, action, head=head, reply=reply, **fields)
    logger = _loggers.get(program) or _loggers.setdefault(program, logging.getLogger("owlery." + program))
    handler = _queue_target(logger, level)
    if handler is not None:
        handler.queue(level, line)
    else:
        logger.log(level, line)
    return line


_loggers: dict[str, logging.Logger] = {}


def setup(settings: Any, program: str) -> None:
    """Configure the root logger once per process from the log_* settings."""
    global _configured, _stderr
    root = logging.getLogger()
    schedule = _stderr._schedule if _stderr is not None else None   # a reload keeps batching
    for handler in list(root.handlers):
        if getattr(handler, "_owlery", False):
            root.removeHandler(handler)
            handler.close()
    _stderr = None
    handler: logging.Handler
    if settings.log_target == "syslog":
        from logging.handlers import SysLogHandler   # here: it loads socket, pickle, queue (~3 ms per LDA run)
        handler = SysLogHandler(address=settings.log_syslog_socket, facility=SysLogHandler.LOG_MAIL)
        handler.setFormatter(logging.Formatter(f"owlery-{program}[%(process)d]: %(message)s"))
    else:
        handler = _stderr = _StderrHandler(sys.stderr, _Formatter("%(asctime)s %(levelname)s %(message)s"))
        if schedule is not None:
            _stderr.batch(schedule)
    handler._owlery = True  # type: ignore[attr-defined]
    # Every decision is a log line: skip what our formats never show (the caller's file and
    # line, found by walking the stack; thread names), as the logging HOWTO advises.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper()))
    _configured = True
