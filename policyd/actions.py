"""Policy actions (the access(5) right-hand sides a check may answer) and the reply catalogue.

A check returns a `PolicyAction`. Build one with the helpers, never from a string:
`DUNNO`, `reject(reply)` (answers the exact code: `550 5.1.1 User unknown`),
`defer(reply)`, `defer_if_permit(reply)` (`DEFER_IF_PERMIT 4.3.0 text`: Postfix answers
`$access_map_defer_code` 450 with our DSN only if the other restrictions would permit),
`defer_if_reject(reply)`, `prepend("Header: value")`, `warn(text)`, `info(text)`,
`hold(text)`, `discard(text)`, `filter_to(...)`, `redirect(...)`, `bcc(...)`.

Postfix takes one action per reply. DUNNO, PREPEND, WARN and INFO are *annotations*:
Postfix continues with its next restriction after them, so the pipeline treats them
as "passing" and keeps going; everything else is *decisive* and ends the pipeline.
Postfix itself writes `<rcpt>: Recipient address rejected:` before a reply's text,
so texts say only why.
Talks to: nothing. Tests: tests/policyd/test_actions.py
"""

from __future__ import annotations

import dataclasses
import functools
import re

from owlery.reply import Reply

_HEADER_RE = re.compile(r"[!-9;-~]+:[ -~]*\Z")   # RFC 5322 field name, printable value, nothing after
_ANNOTATIONS = frozenset({"DUNNO", "PREPEND", "WARN", "INFO"})
_TEXT_LIMIT = 990   # a header line must stay within RFC 5322's 998 octets


@dataclasses.dataclass(frozen=True)
class PolicyAction:
    """One policy answer. `verb` is an access(5) keyword, or "REPLY" for a numeric reply."""

    verb: str
    reply: Reply | None = None
    text: str = ""

    @property
    def decisive(self) -> bool:
        """False for DUNNO/PREPEND/WARN/INFO (Postfix goes on), True for the rest."""
        return self.verb not in _ANNOTATIONS

    def render(self) -> str:
        """The action text after `action=`."""
        return self._rendered

    @functools.cached_property      # actions are immutable and often reused (catalogue, caches)
    def _rendered(self) -> str:
        if self.verb == "REPLY":
            assert self.reply is not None
            return str(self.reply)
        if self.reply is not None:
            # access(5): "DEFER_IF_PERMIT 4.3.0 text": Postfix takes the DSN from the text.
            return f"{self.verb} {self.reply.dsn} {self.reply.text}".rstrip()
        return f"{self.verb} {self.text}".rstrip()

    def log_word(self) -> str:
        """The word for the decision log line (Postfix style: reject, defer, prepend...)."""
        return self._log_word

    @functools.cached_property
    def _log_word(self) -> str:
        if self.verb == "REPLY":
            assert self.reply is not None
            return "reject" if self.reply.is_permanent else "defer"
        return self.verb.lower().replace("_", "-")


class LazyPrepend:
    """A PREPEND whose header line is built only when the pipeline answers with it.

    A check that annotates (SPF's trace header) runs before checks that may end the request
    (greylisting defers most first attempts): the line it would build is then thrown away.
    `build()` gives the PolicyAction (a PREPEND) or None for no header; it runs at most once,
    when the pipeline takes the annotation or when `verb`, `text` or `render()` is read.
    """

    __slots__ = ("_build", "_action")
    decisive = False
    reply = None

    def __init__(self, build):
        self._build = build
        self._action: PolicyAction | None = None

    def resolved(self) -> PolicyAction:
        """The PREPEND, or DUNNO when `build` made no header."""
        if self._action is None:
            self._action = self._build() or DUNNO
            self._build = None
        return self._action

    @property
    def verb(self) -> str:
        return self.resolved().verb

    @property
    def text(self) -> str:
        return self.resolved().text

    def render(self) -> str:
        return self.resolved().render()

    def log_word(self) -> str:
        return self.resolved().log_word()


def _printable(text: str, what: str) -> str:
    # printable ASCII is exactly " " to "~": isascii() and isprintable() say it in C
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"{what} contains a non-printable or non-ASCII character: {text!r}")
    if len(text) > _TEXT_LIMIT:
        raise ValueError(f"{what} is longer than {_TEXT_LIMIT} characters")
    return text


DUNNO = PolicyAction("DUNNO")


def reject(reply: Reply) -> PolicyAction:
    """A numeric reply, exactly this code and DSN (4xx or 5xx)."""
    if reply.code < 400:
        raise ValueError("reject needs a 4xx or 5xx reply")
    return PolicyAction("REPLY", reply)


def defer(reply: Reply) -> PolicyAction:
    """A temporary numeric reply (4xx) that Postfix answers at once."""
    if not reply.is_temporary:
        raise ValueError(f"defer needs a 4xx reply, got {reply.code}")
    return PolicyAction("REPLY", reply)


def defer_if_permit(reply: Reply) -> PolicyAction:
    """DEFER_IF_PERMIT: defer only if the rest of the restrictions would accept (a later 5xx wins)."""
    if not reply.is_temporary:
        raise ValueError(f"DEFER_IF_PERMIT needs a 4xx reply, got {reply.code}")
    return PolicyAction("DEFER_IF_PERMIT", reply)


def defer_if_reject(reply: Reply) -> PolicyAction:
    """DEFER_IF_REJECT: turn a later reject into a deferral."""
    if not reply.is_temporary:
        raise ValueError(f"DEFER_IF_REJECT needs a 4xx reply, got {reply.code}")
    return PolicyAction("DEFER_IF_REJECT", reply)


def prepend(header: str) -> PolicyAction:
    """PREPEND a header line `Name: value` (ignored by Postfix at END-OF-MESSAGE)."""
    if not _HEADER_RE.match(header):
        raise ValueError(f"not a header line: {header!r}")
    return PolicyAction("PREPEND", text=_printable(header, "header"))


def warn(text: str) -> PolicyAction:
    return PolicyAction("WARN", text=_printable(text, "WARN text"))


def info(text: str) -> PolicyAction:
    return PolicyAction("INFO", text=_printable(text, "INFO text"))


def hold(text: str = "") -> PolicyAction:
    return PolicyAction("HOLD", text=_printable(text, "HOLD text"))


def discard(text: str = "") -> PolicyAction:
    return PolicyAction("DISCARD", text=_printable(text, "DISCARD text"))


def filter_to(nexthop: str) -> PolicyAction:
    return PolicyAction("FILTER", text=_printable(nexthop, "FILTER destination"))


def redirect(address: str) -> PolicyAction:
    return PolicyAction("REDIRECT", text=_printable(address, "REDIRECT address"))


def bcc(address: str) -> PolicyAction:
    return PolicyAction("BCC", text=_printable(address, "BCC address"))


# --- reply catalogue -------------------------------------------------------------------

USER_UNKNOWN = Reply(550, "5.1.1", "User unknown")
BACKEND_TIMEOUT = Reply(451, "4.3.0", "Lookup timed out, try again later")
MAILBOX_FULL = Reply(552, "5.2.2", "Mailbox full")
MAILBOX_FULL_TEMPORARY = Reply(452, "4.2.2", "Mailbox full, try again later")
LIST_RESTRICTED = Reply(550, "5.7.1", "Only authorised senders may post to this list")
