"""The actions a Sieve run produces: plain frozen values the delivery executes.

The interpreter adds these to a `sieve.result.Result`; it never performs them. The
delivery (sieve.delivery) stores, sends and marks. Names (`.name`) are Pigeonhole's
action names, which the testsuite's `test_result_action` matches.
Tests: tests/sieve/test_api.py and the conformance run.
"""

from __future__ import annotations

from owlery.record import Record, field


class Action(Record, frozen=True):
    """Base: `name` is the action kind; `line` is where the script asked for it."""

    name = "action"
    line: int = field(default=0, kw_only=True, compare=False)


class FinalFlags(tuple):
    """The `flags` of a keep/fileinto asked for by a script without imap4flags while another
    script of the include tree has it: filled in with the internal flags' value when the run
    ends (sieve.extensions.imap4flags.final_flags); empty until then. A duplicate store that
    carries them leaves the first one's flags as they are (Pigeonhole gives implicit flags to
    a new store only)."""


def _head_field():
    # the header block (fields + blank line) of the message as it stood when the script asked
    # for the action, when editheader had changed it by then (RFC 5293 7); None: unchanged.
    # Read it through sieve.api.Result.message_for(action), never directly.
    return field(default=None, kw_only=True, compare=False, repr=False)


class Keep(Action, frozen=True):
    """Store into the default mailbox (INBOX), with IMAP flags (imap4flags).

    Store `Result.message_for(action)`: an explicit keep stores the message as the script had
    edited it when it asked for the keep; the implicit keep stores the final message."""

    name = "keep"
    mailbox: str = "INBOX"
    flags: tuple[str, ...] = ()
    implicit: bool = False
    head: bytes | None = _head_field()


class FileInto(Action, frozen=True):
    """Store into `mailbox` ("." separates levels, like Dovecot/Maildir++ names).

    create: make the mailbox when missing (RFC 5490 :create); otherwise a missing mailbox
    is an execution failure (the executor then keeps into INBOX). special_use: RFC 8579
    :specialuse flag; when a mailbox with that use exists the executor stores there instead.
    copy: RFC 3894 :copy (did not cancel implicit keep; informational). Store
    `Result.message_for(action)` (the message as edited when the script asked for it)."""

    name = "store"
    mailbox: str = "INBOX"
    flags: tuple[str, ...] = ()
    create: bool = False
    copy: bool = False
    special_use: str | None = None
    head: bytes | None = _head_field()
    # with special_use: the flags of a later fileinto into the named mailbox (sieve.result sets
    # them); when no folder has the special use and this store falls back to the named mailbox,
    # the one copy there takes them (the last fileinto's flags, as Dovecot LMTP); None: `flags`
    fallback_flags: tuple[str, ...] | None = field(default=None, kw_only=True, compare=False, repr=False)


class Redirect(Action, frozen=True):
    """Resend the message, unchanged but for trace headers, to `address` (envelope).

    The executor sends `Result.message_for(action)` (the message as edited when the script
    asked for the redirect) with MAIL FROM = `envelope_from` (the original sender unless
    policy says otherwise; "" is the null sender)."""

    name = "redirect"
    address: str = ""
    copy: bool = False
    envelope_from: str = ""
    head: bytes | None = _head_field()


class Discard(Action, frozen=True):
    """Silently drop (cancels implicit keep; nothing to execute)."""

    name = "discard"


class Reject(Action, frozen=True):
    """Refuse the message. ereject=True: refuse in the SMTP/LMTP dialogue (5xx with `reason`)
    when still possible; otherwise (and for plain reject) the executor sends `mdn`, a ready
    RFC 5429 rejection message, to `mdn_to` from the null sender."""

    name = "reject"
    reason: str = ""
    ereject: bool = False
    mdn: bytes = b""
    mdn_to: str = ""


class SendMessage(Action, frozen=True):
    """A ready message the executor hands to the MTA: MAIL FROM `envelope_from`
    ("" = null sender), RCPT TO each of `recipients`."""

    name = "send"
    envelope_from: str = ""
    recipients: tuple[str, ...] = ()
    message: bytes = b""


class Vacation(Action, frozen=True):
    """An RFC 5230 auto-reply, already decided to be due (not already sent, not to a list...).

    The executor sends `reply` (a complete message) from the null sender to `to`, then calls
    `host.mark(tracking_key, period)` so the same sender is not answered again within
    `period` seconds."""

    name = "vacation"
    to: str = ""
    from_addr: str = ""
    subject: str = ""
    reason: str = ""
    mime: bool = False
    handle: str = ""
    period: float = 0.0
    tracking_key: str = ""
    reply: bytes = b""


class Notify(Action, frozen=True):
    """An RFC 5435 notification. For `mailto:` the engine builds `message`, a ready mail the
    executor sends from `envelope_from` to `recipients`; other methods are left to the host."""

    name = "notify"
    method: str = ""
    from_addr: str | None = None
    importance: str = "2"
    options: tuple[str, ...] = ()
    text: str = ""
    envelope_from: str = ""
    recipients: tuple[str, ...] = ()
    message: bytes = b""


class DuplicateMark(Action, frozen=True):
    """RFC 7352: remember `tracking_key` for `period` seconds once delivery succeeded
    (executor: `host.mark(tracking_key, period)`)."""

    name = "duplicate_mark"
    tracking_key: str = ""
    period: float = 0.0


class Report(Action, frozen=True):
    """vnd.dovecot.report: a ready abuse report message to send."""

    name = "report"
    address: str = ""
    envelope_from: str = ""
    message: bytes = b""


ALL_ACTIONS = (Keep, FileInto, Redirect, Discard, Reject, SendMessage, Vacation, Notify,
               DuplicateMark, Report)
