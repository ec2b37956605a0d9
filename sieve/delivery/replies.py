"""Delivery's reply catalogue: every SMTP/LMTP reply lmtpd, the LDA and the executor give.

One place for code, enhanced status code and text (owlery.reply.Reply validates each), so a
reply is changed once and a test (tests/delivery/test_reply_catalogue.py) keeps literals from
creeping back into the other modules of sieve/delivery. Fixed replies are `R_*` constants;
replies naming a recipient are small factories (`<address> text`, cut to a safe length).
The LDA prints a reply's DSN and text as its first stderr line (`dsn_line`), which Postfix's
pipe(8) puts into the bounce or defer notice. sieve/delivery/lda_lmtp.py keeps its own
literals on purpose: it is stdlib-only, to start fast.
Talks to: nothing. Tests: tests/delivery/test_reply_catalogue.py, tests/fuzz/test_lmtp.py
"""

from __future__ import annotations

from owlery.reply import Reply

# --- the LMTP dialogue (sieve/delivery/lmtp.py) ------------------------------------------

R_OK = Reply(250, "2.0.0", "Ok")
R_SENDER_OK = Reply(250, "2.1.0", "Ok")
R_RCPT_OK = Reply(250, "2.1.5", "Ok")
R_BYE = Reply(221, "2.0.0", "Bye")
R_VRFY = Reply(252, "2.5.0", "Send some mail, I'll try my best")
R_USE_LHLO = Reply(500, "5.5.1", "This is LMTP: use LHLO")
R_UNKNOWN = Reply(500, "5.5.1", "Command not recognized")
R_BAD_COMMAND = Reply(500, "5.5.2", "Invalid command syntax")
R_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
R_NEED_LHLO = Reply(503, "5.5.1", "Send LHLO first")
R_NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
R_NEED_MAIL = Reply(503, "5.5.1", "Send MAIL first")
R_NEED_RCPT = Reply(503, "5.5.1", "No valid recipients")
R_LHLO_NEEDS_HOST = Reply(501, "5.5.4", "LHLO needs a host name")
R_BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
R_BAD_RCPT = Reply(501, "5.1.3", "Bad recipient address syntax")
R_BAD_ARGS = Reply(501, "5.5.4", "Syntax error in parameters")
R_BAD_PARAM = Reply(555, "5.5.4", "Unsupported parameter")
R_TOO_MANY_RCPTS = Reply(452, "4.5.3", "Too many recipients")
R_TOO_BIG = Reply(552, "5.3.4", "Message too big for system")
R_TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
R_PIPELINE_OVERFLOW = Reply(421, "4.5.0", "Too much pipelined input, closing connection")
R_IDLE_TIMEOUT = Reply(421, "4.4.2", "Idle timeout, closing connection")
R_INTERNAL_CLOSE = Reply(421, "4.3.0", "Internal error, closing connection")
R_TOO_MANY_CONNECTIONS = Reply(421, "4.3.2", "Too many connections, try again later")  # lmtpd_max_connections
R_DATA_GO = "354 Start mail input; end with <CRLF>.<CRLF>"     # not a final reply: no DSN

# --- texts of the per-recipient replies -------------------------------------------------

T_SAVED = "Saved"
T_TEMPFAIL = "Temporary failure, try again later"
T_MAILBOX_FULL = "Mailbox full"
T_USER_UNKNOWN = "User unknown"
T_REJECTED = "Message rejected"
T_CONCURRENCY = "Too many concurrent deliveries for this user, try again later"
T_LOOKUP_FAILED = "Temporary lookup failure"
T_CHECK_FAILED = "Temporary failure"
T_INTERNAL = "Internal error, try again later"

# --- what a remote target of an alias or group got (executor.deliver_group) ---------------

R_FORWARD_LATER = Reply(451, "4.4.0", "forward not accepted by the MTA yet")
R_FORWARD_LOOP = Reply(550, "5.4.6", "forwarding loop or redirect limit")
R_FORWARD_REFUSED = Reply(550, "5.1.0", "forward refused by the MTA")

# --- the LDA's own (stderr first line: dsn_line) ------------------------------------------

R_LDA_CONFIG = Reply(451, "4.3.5", "owlery lda: configuration error")
R_LDA_USAGE = Reply(451, "4.3.5", "owlery lda: give -d USER or -a ADDRESS")
R_LDA_DIRECTORY = Reply(451, "4.3.0", "owlery lda: directory unavailable")
R_LDA_INPUT = Reply(451, "4.3.0", "owlery lda: cannot read the message")


def lda_lookup_failed(user: str) -> Reply:
    return Reply(451, "4.3.0", Reply.safe_text(f"owlery lda: lookup of {user} failed", 300))


def for_recipient(address: str, text: str) -> str:
    """`<address> text`, printable ASCII, bounded (a reply line must stay under 512 octets)."""
    return Reply.safe_text(f"<{address}> {text}", 400)


def rcpt_ok(address: str) -> Reply:
    return Reply(250, "2.1.5", for_recipient(address, "Ok"))


def user_unknown(address: str) -> Reply:
    return Reply(550, "5.1.1", for_recipient(address, T_USER_UNKNOWN))


def alias_refused(address: str) -> Reply:
    """An alias or group when delivery_alias_expansion = "refuse"."""
    return Reply(550, "5.1.1", for_recipient(
        address, "is an alias or group: delivery does not expand it; let the MTA expand it "
                 "(Postfix virtual_alias_maps)"))


def lookup_failed(address: str) -> Reply:
    return Reply(451, "4.3.0", for_recipient(address, T_LOOKUP_FAILED))


def check_failed(address: str) -> Reply:
    return Reply(451, "4.3.0", for_recipient(address, T_CHECK_FAILED))


def internal_error(address: str) -> Reply:
    return Reply(451, "4.3.0", for_recipient(address, T_INTERNAL))


def saved(address: str, text: str = T_SAVED) -> Reply:
    return Reply(250, "2.0.0", for_recipient(address, text))


def temporary(address: str, dsn: str = "4.3.0", text: str = T_TEMPFAIL) -> Reply:
    """A 4xx for one recipient: 452 for a full mailbox (4.2.2), else 451."""
    return Reply(452 if dsn == "4.2.2" else 451, dsn, for_recipient(address, text))


def mailbox_full(address: str, *, temporary: bool) -> Reply:
    """452 4.2.2 (the MTA retries) or 552 5.2.2 (bounce): delivery_quota_full_tempfail."""
    return Reply(452, "4.2.2", for_recipient(address, T_MAILBOX_FULL)) if temporary else \
        Reply(552, "5.2.2", for_recipient(address, T_MAILBOX_FULL))


def rejected(address: str, reason: str) -> Reply:
    """Sieve ereject: refused in the dialogue with the script's reason."""
    return Reply(550, "5.7.1", for_recipient(address, reason.replace("\n", " ").strip() or T_REJECTED))


def group_deferred(dsn: str, text: str) -> Reply:
    """The one 4xx for an alias or group some targets of which must be retried: 452 4.2.2 when
    every one of them is full, else 451 4.3.0 (`text` names them)."""
    return Reply(452, "4.2.2", text) if dsn == "4.2.2" else Reply(451, "4.3.0", text)


def dsn_line(reply: Reply, detail: str | None = None) -> str:
    """`4.3.5 owlery lda: configuration error: detail`: the LDA's stderr line for `reply`."""
    text = reply.text if detail is None else f"{reply.text}: {detail}"
    return f"{reply.dsn} {Reply.safe_text(text, 400)}"


def usage_line(prog: str, message: str) -> str:
    """The argv error line (argparse): 4.3.5, so the MTA keeps the mail while it is fixed."""
    return f"{R_LDA_CONFIG.dsn} {prog}: {message}"
