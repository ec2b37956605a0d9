"""Typed errors that carry their SMTP reply; only adapters catch broadly.

Talks to: nothing. Tests: tests/core/test_reply.py
"""

from __future__ import annotations

from owlery.reply import Reply


class OwleryError(Exception):
    """Base: a failure that knows the reply the client should get."""

    reply = Reply(451, "4.3.0", "Internal error, please try again later")

    def __init__(self, message: str = "", reply: Reply | None = None):
        super().__init__(message or self.reply.text)
        if reply is not None:
            self.reply = reply


class TemporaryFailure(OwleryError):
    """Something we depend on is not answering now; the sender must retry (4xx, EX_TEMPFAIL)."""

    reply = Reply(451, "4.3.0", "Temporary failure, please try again later")


class DirectoryUnavailable(TemporaryFailure):
    reply = Reply(451, "4.3.0", "Recipient lookup temporarily unavailable")


class StateUnavailable(TemporaryFailure):
    reply = Reply(451, "4.3.0", "State store temporarily unavailable")


class PermanentFailure(OwleryError):
    """A definite refusal (5xx, EX_NOUSER/EX_DATAERR): retrying will not help."""

    reply = Reply(550, "5.0.0", "Rejected")
