"""LMTP server protocol (RFC 2033) as a sans-I/O state machine: bytes in, actions out.

The machine parses commands and the DATA stream (dot-unstuffing, CRLF -> LF, size and
line limits) and emits actions: `SendReply(bytes)`, `CheckRecipient(...)` (the adapter
looks the address up and answers with `recipient_checked(reply, user)`), `Deliver(txn)`
(the adapter delivers and answers with `delivered(replies)`: one reply per accepted
recipient, in RCPT order, as RFC 2033 requires) and `CloseConnection()`. While an answer is
pending, further (pipelined) input is buffered, so replies always come out in order; the
adapter stops reading meanwhile (`waiting`), and the buffer is capped anyway
(`Limits.pipeline_buffer`): past it the input is dropped and, once the pending replies are
out, the connection is closed with 421. A MAIL FROM or RCPT TO path holding a control
character (C0, DEL, C1) or other non-printable character gets 501 5.1.7 / 501 5.1.3, so none
can reach the Return-Path or Delivered-To the delivery writes.
Advertised: PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME, SIZE, and X-OWLERY-USER: the RCPT
parameter `X-OWLERY-USER=<xtext user>` the LDA's fast path sends for `-a ADDRESS -d USER`
(dovecot-lda's meaning: the user's mailbox and Sieve script, with ADDRESS as the envelope
recipient Sieve sees and Delivered-To names), so the lookup is of USER, not ADDRESS.
Its replies come from sieve/delivery/replies.py; `idle_timeout()` and `internal_error()` decide
how a connection ends when the adapter's timer fires or its answer fails, `delivery_failed()`
what the recipients of a transaction the adapter could not deliver hear (451 4.3.0 each);
`commands` and `data_octets` count progress for the adapter's deadline
(lmtpd_core.ClientDeadline). Also the trace helpers the adapter uses: `received_header()` (RFC 5321 4.4, one per recipient, `for <rcpt>`)
and `postfix_queue_id()` (the id in the topmost Received header Postfix added, which keys lmtpd's and the LDA's log lines).

Talks to: nothing (sieve.delivery.lmtpd is the Twisted adapter).
Tests: tests/delivery/test_lmtp.py (transcripts), tests/delivery/test_lmtp_hostile.py,
tests/delivery/test_lmtpd_hostile_s20.py,
tests/delivery/test_lmtp_dovecot_parity.py, tests/delivery/test_lmtp_dovecot_differential.py (against Dovecot).
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from typing import Any

from owlery.reply import Reply
from sieve.delivery.replies import (
    R_BAD_ARGS,
    R_BAD_COMMAND,
    R_BAD_PARAM,
    R_BAD_RCPT,
    R_BAD_SENDER,
    R_BYE,
    R_DATA_GO,
    R_IDLE_TIMEOUT,
    R_INTERNAL_CLOSE,
    R_LHLO_NEEDS_HOST,
    R_LINE_TOO_LONG,
    R_NEED_LHLO,
    R_NEED_MAIL,
    R_NEED_RCPT,
    R_NESTED_MAIL,
    R_OK,
    R_PIPELINE_OVERFLOW,
    R_SENDER_OK,
    R_TOO_BIG,
    R_TOO_MANY_ERRORS,
    R_TOO_MANY_RCPTS,
    R_UNKNOWN,
    R_USE_LHLO,
    R_VRFY,
)
from sieve.delivery.replies import R_RCPT_OK  # noqa: F401 - the catalogue seen from here (tests/fuzz)
from sieve.delivery.replies import internal_error

# postfix_queue_id lives in a module of its own, so the in-process LDA reads it without this machine.
from sieve.delivery.queueid import HEADER_SCAN_LIMIT, postfix_queue_id  # noqa: F401


# --- actions ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SendReply:
    data: bytes


@dataclasses.dataclass(frozen=True)
class CheckRecipient:
    address: str
    sender: str
    user: str | None = None  # X-OWLERY-USER: look this up instead of `address`


@dataclasses.dataclass(frozen=True)
class AcceptedRecipient:
    address: str
    user: Any  # whatever the adapter resolved (directory entry)


@dataclasses.dataclass(frozen=True)
class Transaction:
    sender: str  # "" for the null sender
    recipients: tuple[AcceptedRecipient, ...]
    message: bytes  # LF line ends, dot-unstuffed
    lhlo: str


@dataclasses.dataclass(frozen=True)
class Deliver:
    transaction: Transaction


@dataclasses.dataclass(frozen=True)
class CloseConnection:
    pass


@dataclasses.dataclass(frozen=True)
class Limits:
    command_line: int = 2048  # bytes, a command line with CRLF
    message_size: int = 50 * 1024 * 1024
    recipients: int = 1000
    errors: int = 20  # consecutive bad commands (500/501/503): the last one gets 421
    pipeline_buffer: int = 1 << 20  # bytes of input held while an answer is pending


# --- trace -------------------------------------------------------------------------------


def _token(text: str, limit: int = 255) -> str:
    """A client-supplied word made safe for a header: printable ASCII, no spaces, bounded."""
    word = text.split()[0] if text.split() else ""
    return "".join(c for c in word if 33 <= ord(c) <= 126 and c not in "()")[:limit] or "unknown"


def received_header(
    *, lhlo: str, peer_ip: str | None, by: str, recipient: str, now: float, protocol: str = "LMTP"
) -> bytes:
    """`Received: from LHLO ([ip]) by HOST (Owlery) with LMTP for <rcpt>; date`, folded, LF ends.

    No reverse DNS (the peer is the local MTA): TCP-info is the address literal only, and it
    is left out for a unix socket peer.
    """
    literal = ""
    if peer_ip:
        literal = f" ([IPv6:{peer_ip}])" if ":" in peer_ip else f" ([{peer_ip}])"
    rcpt = recipient if all(c.isprintable() and c not in "<>" for c in recipient) else "unknown"
    text = (
        f"Received: from {_token(lhlo)}{literal}\n\tby {_token(by)} (Owlery) with {protocol}"
        f"\n\tfor <{rcpt}>; {email.utils.formatdate(now, localtime=True)}\n"
    )
    return text.encode("utf-8", "surrogateescape")


def _line(reply: Reply | str) -> bytes:
    return (str(reply) + "\r\n").encode("ascii")


_PATH_RE = re.compile(r"^\s*<([^>]*)>\s*(.*)$")


def _parse_path(arg: str) -> tuple[str, str] | None:
    """`<addr> params` -> (address without source route, params); None when malformed."""
    m = _PATH_RE.match(arg)
    if not m:
        # Be liberal like Postfix: a bare address without brackets.
        parts = arg.strip().split(None, 1)
        if not parts or "<" in parts[0] or ">" in parts[0]:
            return None
        address, params = parts[0], parts[1] if len(parts) > 1 else ""
    else:
        address, params = m.group(1), m.group(2)
    if address.startswith("@"):
        # RFC 5321 source route <@a,@b:user@d>: ignore the route.
        _, colon, rest = address.partition(":")
        if not colon:
            return None
        address = rest
    if any(c.isspace() for c in address) and not address.startswith('"'):
        return None
    if not address.isprintable():
        # CR, NUL, any other C0 control, DEL, C1 controls, line separators: never into a header
        return None
    return _unquote_local_part(address), params


_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _unquote_local_part(address: str) -> str:
    """`"alice"@d` -> `alice@d`: a quoted local part that needs no quoting is the same mailbox
    as the bare one (RFC 5322 3.2.4: a quoted-string is semantically identical to an atom; RFC
    5321 4.1.2 asks for the unquoted form where it is valid). Anything else stays as given."""
    if not address.startswith('"'):
        return address
    out, i = [], 1
    while i < len(address) and address[i] != '"':
        if address[i] == "\\" and i + 1 < len(address):
            i += 1
        out.append(address[i])
        i += 1
    rest = address[i + 1 :]
    local = "".join(out)
    if i >= len(address) or (rest and not rest.startswith("@")) or not _ATEXT.fullmatch(local):
        return address
    return local + rest


def _recipient_key(address: str) -> str:
    """Two RCPTs name the same recipient: the same local part (case kept: RFC 5321 2.4) at the
    same domain (case ignored)."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address


USER_PARAM = "X-OWLERY-USER"


def xtext_decode(text: str) -> str | None:
    """RFC 3461 xtext ("+" HEX HEX for anything but printable ASCII other than "+" and "=");
    None when malformed."""
    out, i = bytearray(), 0
    while i < len(text):
        c = text[i]
        if c == "+":
            h = text[i + 1 : i + 3]
            if len(h) != 2 or any(x not in "0123456789ABCDEF" for x in h):
                return None
            out.append(int(h, 16))
            i += 3
        elif 33 <= ord(c) <= 126 and c != "=":
            out.append(ord(c))
            i += 1
        else:
            return None
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")


def _parse_params(text: str) -> dict[str, str] | None:
    """RFC 5321 4.1.2 esmtp-param = esmtp-keyword ["=" esmtp-value]; None when malformed (a
    501, not the 555 of a well-formed parameter we lack: an 8-bit or control byte, `=` alone)."""
    out: dict[str, str] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _ESMTP_KEYWORD.fullmatch(key) or (eq and not _ESMTP_VALUE.fullmatch(value)):
            return None
        out[key.upper()] = value
    return out


class LMTPServer:
    """One LMTP connection's state."""

    def __init__(self, hostname: str, limits: Limits = Limits()):
        self.hostname = hostname
        self.limits = limits
        self._buf = bytearray()  # consumed from the front with del: O(1) a line, not a copy of the rest
        self._lhlo: str | None = None
        self._sender: str | None = None
        self._recipients: list[AcceptedRecipient] = []
        self._copy_of: list[int] = []  # per accepted RCPT: its recipient in the Deliver
        self._pending_rcpt: str | None = None
        self._waiting = False
        self._closed = False
        self._errors = 0  # consecutive bad commands (500/501/503)
        self._skip_long_line = False
        self._overflow = False  # pipelined input past limits.pipeline_buffer was dropped
        # Progress, for the adapter's deadline: only whole lines restart the idle timeout, so a
        # command dripped a byte at a time is cut off; DATA earns time by the octets it brings.
        self.commands = 0  # whole command lines consumed (a too-long one too)
        self.data_octets = 0  # DATA octets consumed, over the connection
        # DATA state
        self._in_data = False
        self._at_bol = True
        self._chunks: list[bytes] = []
        self._size = 0
        self._oversize = False

    # -- public ----------------------------------------------------------------

    def start(self) -> list:
        return [SendReply(_line(f"220 {self.hostname} LMTP ready"))]

    @property
    def waiting(self) -> bool:
        """An answer (lookup, delivery) is pending: the adapter should stop reading."""
        return self._waiting

    @property
    def overflowed(self) -> bool:
        """Pipelined input past `limits.pipeline_buffer` was dropped: the connection ends
        (421) once the pending answer is out."""
        return self._overflow

    @property
    def buffered(self) -> int:
        """Bytes of input held, not yet consumed."""
        return len(self._buf)

    def feed(self, data: bytes) -> list:
        if self._closed or self._overflow:
            return []
        self._buf += data
        out = self._run()
        if self._waiting and len(self._buf) > self.limits.pipeline_buffer:
            # A client pipelining without bound while we are busy: drop it all; the pending
            # answer still goes out, then 421 (see _run).
            self._buf.clear()
            self._overflow = True
        return out

    def recipient_checked(self, reply: Reply, user: Any = None) -> list:
        """Answer a CheckRecipient: a 2xx reply accepts it (with `user` kept for delivery)."""
        assert self._waiting and self._pending_rcpt is not None
        self._waiting = False
        if reply.code // 100 == 2:
            self._recipients.append(AcceptedRecipient(self._pending_rcpt, user))
        self._pending_rcpt = None
        return [SendReply(_line(reply))] + self._run()

    def idle_timeout(self) -> list:
        """The client was silent too long: 421 unless an answer is still pending, then close."""
        self._closed = True
        return ([] if self._waiting else [SendReply(_line(R_IDLE_TIMEOUT))]) + [CloseConnection()]

    def internal_error(self) -> list:
        """The adapter failed to produce an answer: 421 and close (the MTA retries)."""
        if self._closed:
            return []
        self._closed = True
        return [SendReply(_line(R_INTERNAL_CLOSE)), CloseConnection()]

    def delivery_failed(self) -> list:
        """The adapter could not produce a Deliver's replies (a bug before or after the
        deliveries): 451 4.3.0 for each accepted RCPT, so the MTA retries them (a copy stored
        meanwhile may come twice; none is lost), and the session goes on."""
        assert self._waiting
        self._waiting = False
        out: list = [SendReply(b"".join(_line(internal_error(r.address)) for r in self._recipients))]
        self._reset()
        return out + self._run()

    def delivered(self, replies: list[Reply]) -> list:
        """Answer a Deliver: one reply per recipient of its transaction, in order; sent as one
        reply per accepted RCPT (a repeated RCPT gets its first one's)."""
        assert self._waiting
        if len(replies) != len(set(self._copy_of)):
            raise ValueError(f"{len(replies)} replies for {len(set(self._copy_of))} recipients")
        self._waiting = False
        out: list = [SendReply(b"".join(_line(replies[i]) for i in self._copy_of))]
        self._reset()
        return out + self._run()

    # -- machinery -------------------------------------------------------------

    def _reset(self) -> None:
        self._sender = None
        self._recipients = []
        self._copy_of = []
        self._pending_rcpt = None
        self._in_data = False
        self._at_bol = True
        self._chunks = []
        self._size = 0
        self._oversize = False

    def _run(self) -> list:
        if self._overflow and not self._waiting and not self._closed:
            self._closed = True
            return [SendReply(_line(R_PIPELINE_OVERFLOW)), CloseConnection()]
        out: list = []
        while not self._waiting and not self._closed:
            if self._in_data:
                step = self._data_step()
                if step is None:
                    break
                out += step
                continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.limits.command_line:
                    # Swallow the rest of this line; answer once it ends.
                    self._buf.clear()
                    self._skip_long_line = True
                break
            raw = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            self.commands += 1
            if self._skip_long_line or len(raw) > self.limits.command_line:
                self._skip_long_line = False
                out += self._error(R_LINE_TOO_LONG)
                continue
            errors = self._errors
            out += self._command(raw.rstrip(b"\r\n"))
            if self._errors == errors:
                self._errors = 0  # answered, not refused as a bad command: the run is broken
        return out

    def _error(self, reply: Reply) -> list:
        """A refused command. Only syntax and sequence errors (500, 501, 503) count, and only in
        a row, as Dovecot's LMTP counts them: a long-lived connection the MTA reuses for many
        transactions must not be dropped for a few odd addresses spread over hours, while a
        client that talks nonsense is cut off. A 555 or 552 is an answer, not a bad command."""
        if reply.code not in (500, 501, 503):
            self._errors = 0
            return [SendReply(_line(reply))]
        self._errors += 1
        if self._errors >= self.limits.errors:
            self._closed = True
            return [SendReply(_line(R_TOO_MANY_ERRORS)), CloseConnection()]
        return [SendReply(_line(reply))]

    def _command(self, raw: bytes) -> list:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            # not text at all, as Dovecot sees it too: no command (500 5.5.2), not bad arguments
            return self._error(R_BAD_COMMAND)
        verb, _, arg = line.partition(" ")
        if verb and not (verb.isascii() and verb.isalpha() and len(verb) <= 32):
            # RFC 5321 4.1.1: command verbs are alphabetic (and short: Dovecot takes up to 32);
            # anything else is no command at all, a syntax error rather than an unknown command
            return self._error(R_BAD_COMMAND)
        verb = verb.upper()
        if verb == "LHLO":
            if not arg.strip():
                return self._error(R_LHLO_NEEDS_HOST)
            self._reset()
            self._lhlo = arg.strip()
            ext = [
                self.hostname,
                "PIPELINING",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                f"SIZE {self.limits.message_size}",
                USER_PARAM,
            ]
            text = "".join(f"250-{e}\r\n" for e in ext[:-1]) + f"250 {ext[-1]}\r\n"
            return [SendReply(text.encode("ascii"))]
        if verb in ("HELO", "EHLO"):
            return self._error(R_USE_LHLO)
        if verb == "NOOP":
            return [SendReply(_line(R_OK))]
        if verb in ("RSET", "QUIT") and arg.strip():
            # RFC 5321 4.1.1.5 and 4.1.1.10: "RSET" CRLF, "QUIT" CRLF: no argument
            return self._error(R_BAD_ARGS)
        if verb == "RSET":
            self._reset()
            return [SendReply(_line(R_OK))]
        if verb == "QUIT":
            self._closed = True
            return [SendReply(_line(R_BYE)), CloseConnection()]
        if verb == "VRFY":
            return [SendReply(_line(R_VRFY))]
        if verb == "MAIL":
            return self._mail(arg)
        if verb == "RCPT":
            return self._rcpt(arg)
        if verb == "DATA":
            if arg.strip():
                return self._error(R_BAD_ARGS)
            if self._sender is None:
                return self._error(R_NEED_MAIL)
            if not self._recipients:
                return self._error(R_NEED_RCPT)
            self._in_data = True
            self._at_bol = True
            return [SendReply(_line(R_DATA_GO))]
        return self._error(R_UNKNOWN)

    def _mail(self, arg: str) -> list:
        if self._lhlo is None:
            return self._error(R_NEED_LHLO)
        if self._sender is not None:
            return self._error(R_NESTED_MAIL)
        if arg[:5].upper() != "FROM:":
            return self._error(R_BAD_ARGS)
        parsed = _parse_path(arg[5:])
        if parsed is None:
            return self._error(R_BAD_SENDER)
        address, param_text = parsed
        params = _parse_params(param_text)
        if params is None:
            return self._error(R_BAD_ARGS)
        for key, value in params.items():
            if key == "SIZE":
                # RFC 1870: ASCII digits only (str.isdigit takes "²" and "١٢")
                if not (0 < len(value) <= 20 and value.isascii() and value.isdigit()):
                    return self._error(R_BAD_ARGS)
                if int(value) > self.limits.message_size:
                    return [SendReply(_line(R_TOO_BIG))]
            elif key == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return self._error(R_BAD_PARAM)
            else:
                return self._error(R_BAD_PARAM)
        self._sender = address
        return [SendReply(_line(R_SENDER_OK))]

    def _rcpt(self, arg: str) -> list:
        if self._sender is None:
            return self._error(R_NEED_MAIL)
        if arg[:3].upper() != "TO:":
            return self._error(R_BAD_ARGS)
        parsed = _parse_path(arg[3:])
        if parsed is None or not parsed[0]:
            return self._error(R_BAD_RCPT)
        address, param_text = parsed
        params = _parse_params(param_text)
        if params is None:
            return self._error(R_BAD_ARGS)
        user = None
        if USER_PARAM in params:
            user = xtext_decode(params.pop(USER_PARAM))
            if not user or not user.isprintable() or any(c.isspace() or c in "<>" for c in user):
                return self._error(R_BAD_PARAM)
        if params:
            return self._error(R_BAD_PARAM)
        if len(self._recipients) >= self.limits.recipients:
            return [SendReply(_line(R_TOO_MANY_RCPTS))]
        self._pending_rcpt = address
        self._waiting = True
        return [CheckRecipient(address, self._sender, user)]

    def _data_step(self) -> list | None:
        """Consume DATA input; None when more input is needed."""
        buf = self._buf
        nl = buf.rfind(b"\n")
        if nl < 0:
            if len(buf) > 65536:
                # A very long line: not at a line start, so it cannot hold the terminator.
                keep = 1 if buf.endswith(b"\r") else 0
                self._add_body(buf[: len(buf) - keep], at_bol=self._at_bol)
                self._buf = buf[len(buf) - keep :]
                self._at_bol = False
            return None
        complete, rest = buf[: nl + 1], buf[nl + 1 :]
        probe = (b"\n" if self._at_bol else b"x") + complete
        ends = [(p, n) for p, n in ((probe.find(b"\n.\r\n"), 4), (probe.find(b"\n.\n"), 3)) if p >= 0]
        if not ends:
            self._add_body(complete, at_bol=self._at_bol)
            self._buf = rest
            self._at_bol = True
            return None
        p, n = min(ends)
        self._add_body(complete[:p], at_bol=self._at_bol)
        self._buf = complete[p - 1 + n :] + rest
        self._in_data = False
        if self._oversize:
            replies = [R_TOO_BIG] * len(self._recipients)
            out = [SendReply(b"".join(_line(r) for r in replies))]
            self._reset()
            return out
        # The same recipient given twice gets one copy, both RCPTs the reply of that delivery,
        # as from Dovecot's LMTP: a client repeating a RCPT does not mean two messages.
        unique: dict[str, int] = {}
        self._copy_of = [unique.setdefault(_recipient_key(r.address), len(unique)) for r in self._recipients]
        firsts: dict[int, AcceptedRecipient] = {}
        for r, i in zip(self._recipients, self._copy_of):
            firsts.setdefault(i, r)
        txn = Transaction(
            self._sender or "", tuple(firsts[i] for i in range(len(unique))), b"".join(self._chunks), self._lhlo or ""
        )
        self._chunks = []
        self._waiting = True
        return [Deliver(txn)]

    def _add_body(self, chunk: bytes, at_bol: bool) -> None:
        if not chunk:
            return
        self.data_octets += len(chunk)
        # RFC 5321 4.5.2: "If the first character is a period and there are other characters on
        # the line, the first character is deleted" (any line, not only "..": ". x" is " x").
        unstuffed = ((b"\n" if at_bol else b"x") + chunk).replace(b"\n.", b"\n")[1:]
        body = unstuffed.replace(b"\r\n", b"\n")
        self._size += len(body)
        if self._size > self.limits.message_size:
            self._oversize = True
            self._chunks = []
            return
        self._chunks.append(body)
