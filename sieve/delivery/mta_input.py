"""What an MTA hands a local delivery agent besides the message: its trace lines and environment.

Postfix's local(8) starts what it gives a mailbox_command or an alias's |command with an mbox
"From sender date" line, then Return-Path, X-Original-To and Delivered-To, and puts the
recipient in $RECIPIENT; pipe(8) prepends the same fields by its flags (F, R, O, D). The LDA
(sieve.delivery.lda, in-process) and its handoff to lmtpd (sieve.delivery.lda_lmtp) read them
through these functions. Standard library only, no imports at all: lda_lmtp runs before site.
Tests: tests/delivery/test_lda_dovecot_options.py, tests/delivery/test_lda_lmtp.py
"""


def split_mbox_from(message: bytes) -> tuple[str | None, bytes]:
    """(the sender a leading mbox "From sender date" line names, the message without that line).

    Postfix's local(8) starts what it hands a mailbox_command or an alias's |command with such
    a line (and pipe(8) does with flag F). It is no header field (a field name has no space:
    RFC 5322 2.2 and 3.6.8), so it is never stored: dovecot-lda drops it too, and takes the
    sender from it when -f is not given. The sender is "" for "MAILER-DAEMON" (how Postfix
    writes the null sender there) and None when the line names no usable one: no time stamp
    after it (asctime's "Mon Dec  7 11:41:53 2026", with a zone before or after the year, or
    "Mon, 7 Dec 2026 11:41:53"), no line end, or no mailbox of printable ASCII with a local
    part and a domain; a quoted local part that needs no quotes loses them. That is what
    dovecot-lda takes from the same lines. Tests: tests/delivery/test_lda_dovecot_options.py"""
    if not message.startswith(b"From "):
        return None, message
    nl = message.find(b"\n")
    if nl < 0:
        return None, b""
    line, rest = message[5:nl].rstrip(b"\r"), message[nl + 1:]
    if len(line) > 1000:                 # no MTA writes such a line: not worth a sender scan
        return None, rest
    end = 0
    if line.startswith(b'"'):            # "x y"@domain: the quoted part may hold spaces
        end = _closing_quote(line) + 1
        if end == 0:
            return None, rest
    end = line.find(b" ", end)
    if end < 0 or not _stamp_ok(line[end:].lstrip(b" ")):
        return None, rest
    word = line[:end]
    if word.upper() == b"MAILER-DAEMON":
        return "", rest
    return _mailbox(word), rest


def _closing_quote(word: bytes) -> int:
    """Index of the quote that closes the one at word[0] (backslash escapes), else -1."""
    i, escaped = 1, False
    while i < len(word):
        c = word[i]
        if c == 34 and not escaped:
            return i
        escaped = c == 92 and not escaped
        i += 1
    return -1


_MONTHS = (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC")


def _stamp_ok(date: bytes) -> bool:
    """Is `date` an mbox From line's time stamp (see split_mbox_from)? Fields are split at
    spaces only; 21 octets at least, as dovecot-lda asks."""
    parts = [p for p in date.split(b" ") if p]
    if len(date) < 21 or len(parts) < 5 or len(parts[0]) not in (3, 4):
        return False
    if parts[0].endswith(b","):           # Mon, 7 Dec 2026 11:41:53
        day, month, year, clock = parts[1:5]
    else:                                 # Mon Dec  7 11:41:53 [zone] 2026 [zone]
        month, day, clock = parts[1:4]
        year = parts[4] if parts[4].isdigit() and len(parts[4]) == 4 else parts[5] if len(parts) > 5 else b""
    hms = clock.split(b":")
    return (month.upper() in _MONTHS and day.isdigit() and len(day) <= 2 and year.isdigit() and len(year) == 4
            and len(hms) in (2, 3) and all(len(x) == 2 and x.isdigit() for x in hms))


_ATEXT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


def _mailbox(word: bytes) -> str | None:
    """`word` as an RFC 5321 Mailbox (local@domain, printable ASCII), quotes dropped where the
    local part is a dot-string; None when it is none."""
    if any(c < 32 or c > 126 for c in word):     # a space only inside the quotes (split there)
        return None
    if word.startswith(b'"'):
        close = _closing_quote(word)
        local, domain = word[:close + 1], word[close + 1:]
        if not domain.startswith(b"@"):
            return None
        inner = local[1:-1]
        if inner and b"\\" not in inner and all(a and set(a) <= _ATEXT for a in inner.split(b".")):
            local = inner
        domain = domain[1:]
    else:
        local, _, domain = word.rpartition(b"@")
        if not local or not all(a and set(a) <= _ATEXT for a in local.split(b".")):
            return None
    if not domain or not (domain.startswith(b"[") and domain.endswith(b"]") or all(
            a and a.replace(b"-", b"").isalnum() for a in domain.split(b"."))):
        return None
    return (local + b"@" + domain).decode("ascii")

# The fields an MTA prepends for a local delivery (pipe(8) flags O, D and R; local(8) always):
# the run of them at the top of the message is where its trace lines are looked for.
_MTA_TRACE = (b"return-path:", b"delivered-to:", b"x-original-to:")


def strip_pipe_trace(message: bytes, sender: str, address: str) -> bytes:
    """Drop the Return-Path/Delivered-To lines the MTA prepended (pipe(8) flags R and D, or
    local(8), which puts X-Original-To between them) when lmtpd would write the same ones, so
    the stored message has each once (the in-process LDA keeps the MTA's and adds none)."""
    ours = {f"return-path: <{sender}>".encode("utf-8", "surrogateescape"),
            f"delivered-to: {address}".lower().encode("utf-8", "surrogateescape")}
    start = 0
    for _ in range(len(_MTA_TRACE) + 1):
        nl = message.find(b"\n", start)
        line = message[start:nl].rstrip(b"\r").lower() if nl >= 0 else b""
        if line in ours:
            ours.discard(line)
            message = message[:start] + message[nl + 1:]
        elif line.startswith(_MTA_TRACE):
            start = nl + 1
        else:
            break
    return message


def env_recipient() -> str | None:
    """RECIPIENT from the environment: the address local(8) runs a mailbox_command for (its
    recipient with extension), used when the command line names none (dovecot-lda takes its
    user from USER then). No privilege rides on it: whoever sets the LDA's environment can
    pass -a as well."""
    import posix                        # built in: no import cost
    value = posix.environ.get(b"RECIPIENT")
    return value.decode("utf-8", "surrogateescape") if value else None


def has_trace_headers(message: bytes) -> bool:
    """Did the MTA already prepend Return-Path/Delivered-To (pipe flags R and D; local(8), with
    X-Original-To among them)? Only the run of such fields at the very top counts: one further
    down came with the message from elsewhere."""
    for line in message[:4096].lower().split(b"\n", 3):
        if line.startswith((b"return-path:", b"delivered-to:")):
            return True
        if not line.startswith(b"x-original-to:"):
            return False
    return False
