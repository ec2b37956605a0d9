"""Logging: one Postfix-style line per decision, to stderr or syslog (mail facility).

`decision("policyd", queue_id, "reject", reply=..., client=..., **fields)` writes
`policyd: 4F3A21C: reject: RCPT from host[addr]: 450 4.7.1 ...; from=<a> to=<b> check=greylist`
(the queue id is left out while Postfix has not assigned one). Products log every
decision through `decision()` so the format stays greppable in one place.
Talks to: stderr or /dev/log. Tests: tests/core/test_log.py
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from typing import Any

from owlery.settings import Str, choice, setting

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
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"


def _fmt_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    # Keep one line per decision whatever the data: control characters would split it.
    # (Checked in C first: this runs for every field of every logged decision.)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


def format_decision(program: str, queue_id: str | None, action: str, *, head: str = "",
                    reply: Any = None, **fields: Any) -> str:
    """Build the decision line; pure so tests can check the exact text."""
    parts = [f"{program}:"]
    if queue_id:
        parts.append(f"{queue_id}:")
    parts.append(f"{action}:")
    line = " ".join(parts)
    if head:
        line += " " + _fmt_value(head) + ":"
    if reply is not None:
        line += " " + _fmt_value(reply) + ";"
    kv = []
    for key, value in fields.items():
        if value is None:
            continue
        if key in ("from", "to", "sender", "recipient", "from_", "rcpt"):
            name = {"from_": "from", "rcpt": "to", "sender": "from", "recipient": "to"}.get(key, key)
            kv.append(f"{name}=<{_fmt_value(value)}>")
        else:
            kv.append(f"{key}={_fmt_value(value)}")
    if kv:
        line += " " + " ".join(kv)
    return line.rstrip(";: ")


def decision(program: str, queue_id: str | None, action: str, *, head: str = "",
             reply: Any = None, level: int = logging.INFO, **fields: Any) -> str:
    """Log one decision line and return it."""
    line = format_decision(program, queue_id, action, head=head, reply=reply, **fields)
    logging.getLogger("owlery." + program).log(level, line)
    return line


def setup(settings: Any, program: str) -> None:
    """Configure the root logger once per process from the log_* settings."""
    global _configured
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_owlery", False):
            root.removeHandler(handler)
    handler: logging.Handler
    if settings.log_target == "syslog":
        handler = logging.handlers.SysLogHandler(
            address=settings.log_syslog_socket, facility=logging.handlers.SysLogHandler.LOG_MAIL)
        handler.setFormatter(logging.Formatter(f"owlery-{program}[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler._owlery = True  # type: ignore[attr-defined]
    # Every decision is a log line: skip what our formats never show (the caller's file and
    # line, found by walking the stack; thread names), as the logging HOWTO advises.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper()))
    _configured = True
