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

import sys

from owlery.lazylog import get_logger
from owlery.settings import Str, choice, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from owlery.log_stderr import StderrHandler

# logging's levels (fixed numbers), here so that a decision line needs no `import logging`
# until it is written: the in-process LDA usually writes none (owlery/lazylog.py).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

LOG_TARGET = setting("log_target", choice("stderr", "syslog"), "stderr",
                     "Where log lines go: stderr (journald picks it up under systemd) or syslog.")
LOG_SYSLOG_SOCKET = setting("log_syslog_socket", Str, "/dev/log",
                            "Syslog socket used when log_target = \"syslog\" (facility mail).")
LOG_LEVEL = setting("log_level", choice("debug", "info", "warning", "error"), "info",
                    "Lowest level written. Decisions are info; backend trouble is warning.")

_stderr: StderrHandler | None = None
_queue_target: Callable[..., StderrHandler | None] | None = None    # owlery.log_stderr's, once setup() ran


def batch_decisions(schedule: Callable[[Callable[[], None]], Any] | None) -> None:
    """From a daemon's reactor thread: its decision lines go to stderr in one write per
    reactor turn; `schedule(fn)` runs fn at the end of the turn (reactor.callLater(0, fn)).
    No effect when logging to syslog or when the handlers are not ours (tests)."""
    if _stderr is not None:
        _stderr.batch(schedule)


# A decision line carries what the client sent (addresses, HELO, file names, a recipient
# list): one value longer than this is cut, saying how long it was, so that no client can
# make a line of megabytes (syslog cuts lines at 8 KiB or less, losing the fields after).
VALUE_LENGTH_MAX = 1000      # characters


def _fmt_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if len(text) > VALUE_LENGTH_MAX:
        text = f"{text[:VALUE_LENGTH_MAX]}...[{len(text)} chars]"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


_FIELD_NAMES = {"from_": "from", "rcpt": "to", "sender": "from", "recipient": "to", "from": "from", "to": "to"}


def queue_id_or_none(text: str | None) -> str | None:
    """`text` when it can be a Postfix queue id (short: hex; long: base-52 letters and digits),
    else None: a stored record's queue id is read back from a file or a database, and a
    damaged one must not lead a line as if Postfix had given it."""
    if text and len(text) <= 32 and text.isascii() and text.isalnum():
        return text
    return None


def format_decision(program: str, queue_id: str | None, action: str, *, head: str = "",
                    reply: Any = None, **fields: Any) -> str:
    """Build the decision line; pure so tests can check the exact text."""
    line = _build(str, program, queue_id, action, head, reply, fields)
    # Keep one line per decision whatever the data: control characters would split it, and
    # no value may be huge. One check of the whole line in C; the field-by-field repair
    # only when it fails (a line no longer than VALUE_LENGTH_MAX has no value over it).
    if len(line) <= VALUE_LENGTH_MAX and line.isprintable():
        return line
    return _build(_fmt_value, program, queue_id, action, head, reply, fields)


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
             reply: Any = None, level: int = INFO, **fields: Any) -> str:
    """Log one decision line and return it."""
    line = format_decision(program, queue_id, action, head=head, reply=reply, **fields)
    if _stderr is not None:      # setup() ran: logging is loaded, our handler may take the line
        logger = _loggers.get(program)
        if logger is None:
            logger = _loggers[program] = get_logger("owlery." + program)._logger()
        handler = _queue_target(_stderr, logger, level)
        if handler is not None:
            handler.queue(level, line)
        else:
            logger.log(level, line)
        return line
    get_logger("owlery." + program).log(level, line)
    return line


_loggers: dict = {}      # program -> its logging.Logger, once setup() loaded logging


def setup(settings: Any, program: str) -> None:
    """Configure the root logger once per process from the log_* settings."""
    global _stderr, _queue_target
    import logging
    from owlery.log_stderr import OneRecordFormatter, StderrFormatter, StderrHandler, queue_target
    _queue_target = queue_target
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
        handler.setFormatter(OneRecordFormatter(f"owlery-{program}[%(process)d]: %(message)s"))
    else:
        handler = _stderr = StderrHandler(sys.stderr, StderrFormatter("%(asctime)s %(levelname)s %(message)s"))
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
