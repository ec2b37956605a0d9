"""Messages the engine composes: vacation replies (RFC 5230/3834), rejection MDNs
(RFC 5429), mailto notifications (RFC 5436) and abuse reports (RFC 5965, vnd.dovecot.report),
as ready bytes for the delivery to send.

Every header value is made safe here, whatever its source (the script, a variable, the
message being answered): RFC 2047 encoded words are decoded once, undecodable bytes become
U+FFFD, each run of control characters (CR, LF, TAB, NUL, DEL, C1, U+2028/9) becomes one
space, and the text is written back as RFC 5322 wants it: plain ASCII folded at spaces, or
UTF-8 RFC 2047 encoded words, with every line within 76 characters. Addresses are never
"cleaned" into another address: a value that is not exactly one mailbox, or holds control
characters, raises HeaderError and the caller refuses it (runtime error) or skips the
action. In-Reply-To and References carry only well-formed message ids.

Pure functions of the run state. Talks to: sieve.message (RFC 2047 decoding),
sieve.address. Tests: tests/sieve/test_generated_mail_safety.py,
tests/sieve/test_report_extension.py; conformance vacation/, reject/, enotify/, vnd.dovecot/report/.
"""

from __future__ import annotations

import binascii
from _collections_abc import Iterable, Sequence   # = collections.abc, without loading collections (LDA start-up)

from owlery.digests import sha256
from owlery.lazyre import lazy
from sieve.address import AddressError, parse_address_list, parse_path
from sieve.errors import SieveRuntimeError
from sieve.message import decode_2047

MAX_SUBJECT = 256  # characters of a generated Subject (longer ones end with an ellipsis)
MAX_MSGID = 250  # longest message id copied into In-Reply-To / References
MAX_REFERENCES = 20  # message ids in a reply's References (the oldest one and the newest kept)
MAX_ADDRESS = 512  # longest addr-spec written (RFC 5321 allows 64 + 1 + 255)
_LINE = 76  # line limit of header fields we write (RFC 2047 section 2)


class HeaderError(ValueError):
    """A value that cannot be written into a header field without changing what it means
    (an address with control characters, two addresses where one is expected...)."""


def checked_from(value: str | None, action: str) -> str | None:
    """A `:from` as the script built it, checked at run time (variables may have made it):
    one mailbox, or a runtime error naming the action (RFC 5230 4.4, RFC 5435 3.3)."""
    if value is not None:
        try:
            single_mailbox(value)
        except HeaderError as e:
            raise SieveRuntimeError(
                f"specified :from address '{loggable(value)}' is invalid for the {action}: {e}"
            ) from None
    return value


# --- text ----------------------------------------------------------------------------

_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_RUN = lazy(f"[{_CONTROL}]+")
_HAS_CONTROL = lazy(f"[{_CONTROL}]")
_HAS_BREAKING_CONTROL = lazy("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # all but TAB
_SURROGATE = lazy("[\ud800-\udfff]")
_SPACED_WORDS = lazy(r" +[^ ]+")
_NOT_HOST = lazy(r"[^A-Za-z0-9.-]")
_LINE_END = lazy(r"\r\n|\r|\n")
_LINE_END_BYTES = lazy(rb"\r?\n|\r")
_FIELD_NAME = lazy(r"[!-9;-~]{1,60}")


def _no_surrogates(value: str) -> str:
    """Undecodable bytes (surrogate escapes of the script or message) become U+FFFD."""
    if not _SURROGATE.search(value):
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)


def header_text(value: str, *, decode: bool = True, limit: int | None = None) -> str:
    """`value` as safe header text: RFC 2047 decoded (unless decode=False: the value is
    already decoded), undecodable bytes as U+FFFD, every run of control characters (with
    the spaces around it) replaced by one space, trimmed; cut to `limit` characters with
    an ellipsis. The result never holds CR, LF or another control character."""
    if decode:
        value = decode_2047(value)
    parts = _CONTROL_RUN.split(_no_surrogates(value))
    if len(parts) > 1:
        # each run of controls, with the spaces around it, becomes one space (split, not a
        # backtracking pattern: linear on long runs of spaces)
        pieces = [parts[0].rstrip(" ")] + [p.strip(" ") for p in parts[1:-1]] + [parts[-1].lstrip(" ")]
        value = " ".join(p for p in pieces if p)
    value = value.strip(" ")
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip(" ") + "\u2026"
    return value


def loggable(value: str, limit: int = 128) -> str:
    """`value` for a log line or an error text: control characters escaped (no line can
    be forged), cut to `limit` characters."""
    value = _no_surrogates(value)
    if len(value) > limit:
        value = value[:limit] + "..."
    return _HAS_CONTROL.sub(lambda m: repr(m.group(0))[1:-1], value)


# --- RFC 2047 encoding and folding ----------------------------------------------------

_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _q_char(c: str) -> str:
    if c == " ":
        return "_"
    if c in _Q_SAFE:
        return c
    return "".join(f"={b:02X}" for b in c.encode("utf-8"))


def _encoded_words(text: str, first: int) -> list[str]:
    """`text` as UTF-8 encoded words (Q or B, whichever is shorter) of at most 75
    characters; the first at most `first` (the room left on the field's first line).
    A character is never split between two words (RFC 2047 section 5)."""
    q_len = sum(len(_q_char(c)) for c in text)
    b_len = (len(text.encode("utf-8")) + 2) // 3 * 4
    use_b = b_len < q_len
    prefix = "=?utf-8?b?" if use_b else "=?utf-8?q?"
    words: list[str] = []
    # a first line with too little room gets no word: the fold puts the first on its own line
    room = (first if first >= 16 else 75) - len(prefix) - 2
    cur: list[str] = []  # Q: encoded pieces; B: characters
    size = 0  # Q: encoded length so far; B: UTF-8 bytes so far
    for c in text:
        if use_b:
            piece = c
            n = len(c.encode("utf-8"))
            fits = (size + n + 2) // 3 * 4 <= room
        else:
            piece = _q_char(c)
            n = len(piece)
            fits = size + n <= room
        if not fits and cur:
            words.append(_word(prefix, cur, use_b))
            cur, size = [], 0
            room = 75 - len(prefix) - 2
        cur.append(piece)
        size += n
    if cur or not words:
        words.append(_word(prefix, cur, use_b))
    return words


def _word(prefix: str, cur: list[str], use_b: bool) -> str:
    if use_b:
        payload = binascii.b2a_base64("".join(cur).encode("utf-8"), newline=False).decode("ascii")
    else:
        payload = "".join(cur)
    return f"{prefix}{payload}?="


def _fold(name: str, pieces: Iterable[str]) -> str:
    """'Name: pieces' with a fold (CRLF) before a piece that would pass the line limit.
    Every piece after the first starts with a space, so unfolding gives back the text."""
    lines: list[str] = []
    line = name + ":"
    for p in pieces:
        if not p.startswith(" "):
            p = " " + p
        if len(line) + len(p) > _LINE and line.strip(" "):
            lines.append(line)
            line = ""
        line += p
    lines.append(line)
    return "\r\n".join(lines)


def _plain_ok(text: str, longest: int = 60) -> bool:
    """Can `text` be written as is: printable ASCII, nothing a reader would take for an
    encoded word, and no word too long to fold."""
    return all(" " <= c <= "~" for c in text) and "=?" not in text and all(len(w) <= longest for w in text.split(" "))


def unstructured(name: str, value: str) -> str:
    """A whole unstructured header field (Subject, Comments, X-...) for clean text;
    `value` is cleaned again (never decoded twice) so no caller can bypass the check."""
    text = header_text(value, decode=False)
    if _plain_ok(text):
        return _fold(name, _SPACED_WORDS.findall(" " + text) or [""])
    return _fold(name, _encoded_words(text, _LINE - len(name) - 2))


# --- addresses -------------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]"
_DOT_ATOM = lazy(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOMAIN_LITERAL = lazy(r"\[[!-Z^-~]*\]")


def addr_spec(local: str, domain: str | None) -> str:
    """local@domain as an RFC 5322 addr-spec (the local part quoted when it must be).
    Raises HeaderError for control characters, a missing domain or a broken domain."""
    if not local or not domain:
        raise HeaderError("address without local part or domain")
    if _HAS_CONTROL.search(local) or _HAS_CONTROL.search(domain) or _SURROGATE.search(local + domain):
        raise HeaderError("control character in address")
    if not (_DOMAIN_LITERAL.fullmatch(domain) or _DOT_ATOM.fullmatch(domain)):
        raise HeaderError(f"invalid domain {domain!r}")
    if not _DOT_ATOM.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    spec = f"{local}@{domain}"
    if len(spec) > MAX_ADDRESS:
        raise HeaderError("address too long")
    return spec


def _split_display(text: str) -> tuple[str, bool]:
    """(the text before the angle address, whether there is one). Raises HeaderError on
    group syntax (a ':' or ';' outside quotes, comments and domain literals)."""
    i, n, depth, quoted, literal = 0, len(text), 0, False, False
    while i < n:
        c = text[i]
        if c == "\\" and (quoted or depth or literal):
            i += 2
            continue
        if quoted:
            quoted = c != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(c, 0)
        elif literal:
            literal = c != "]"
        elif c == "[":
            literal = True
        elif c == '"':
            quoted = True
        elif c == "(":
            depth = 1
        elif c == "<":
            return text[:i], True
        elif c in ":;":
            raise HeaderError("group syntax where one mailbox is expected")
        i += 1
    return "", False


def _display_text(raw: str) -> str:
    """A phrase as readable text: quotes and escapes removed, comments dropped, RFC 2047
    decoded, cleaned."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(raw[i])
                i += 1
            i += 1
            continue
        if c == "(":
            depth = 1
            i += 1
            while i < n and depth:
                if raw[i] == "\\":
                    i += 1
                elif raw[i] in "()":
                    depth += 1 if raw[i] == "(" else -1
                i += 1
            out.append(" ")
            continue
        out.append(c)
        i += 1
    return " ".join(header_text("".join(out)).split())


def single_mailbox(value: str) -> tuple[str, str]:
    """(display name as clean text, addr-spec) of a value that must be exactly one
    mailbox ('a@b', 'Name <a@b>', '=?utf-8?q?...?= <a@b>'). Raises HeaderError when it
    is not one valid mailbox or holds raw control characters (CR/LF...)."""
    if _HAS_BREAKING_CONTROL.search(value):
        raise HeaderError("control character in address")
    try:
        found = parse_address_list(value)
    except AddressError as e:
        raise HeaderError(str(e)) from None
    if len(found) != 1:
        raise HeaderError("not exactly one address")
    display_raw, angle = _split_display(value)
    return (_display_text(display_raw) if angle else ""), addr_spec(found[0].local, found[0].domain)


_PHRASE_ATOMS = lazy(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:[ .]+[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\.?")


def _mailbox_pieces(display: str, spec: str) -> list[str]:
    display = header_text(display, decode=False)
    if not display:
        return [" " + spec]
    if _plain_ok(display) and len(display) <= 60:
        phrase = (
            display
            if _PHRASE_ATOMS.fullmatch(display)
            else '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        )
        return [" " + phrase, f" <{spec}>"]
    return [" " + w for w in _encoded_words(display, 60)] + [f" <{spec}>"]


def address_field(name: str, mailboxes: Sequence[tuple[str, str]]) -> str:
    """A From/To/Cc field from (display, addr-spec) pairs (addr-specs from addr_spec or
    single_mailbox), folded between words and after the commas."""
    pieces: list[str] = []
    for k, (display, spec) in enumerate(mailboxes):
        mp = _mailbox_pieces(display, spec)
        if k < len(mailboxes) - 1:
            mp[-1] += ","
        pieces += mp
    return _fold(name, pieces)


# --- message ids -------------------------------------------------------------------------

_MSGID = lazy(r"<([!-;=?-~]+)>")


def msg_ids(value: str | None) -> list[str]:
    """The well-formed message ids ('<left@right>', printable ASCII, no spaces) in a
    header value, in order; anything else is dropped."""
    if not value:
        return []
    return [m.group(0) for m in _MSGID.finditer(value) if "@" in m.group(1) and len(m.group(0)) <= MAX_MSGID]


def _hostname(rt) -> str:
    """This host's name as the environment gives it, reduced to what a domain may hold."""
    return _NOT_HOST.sub("", str(rt.environment.get("host", "localhost")))[:200] or "localhost"


def _sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()


def _msgid(rt, tag: str) -> str:
    h = _sha256_hex((tag + rt.now.isoformat() + rt.envelope.rcpt_to).encode("utf-8", "replace"))
    return f"<{h[:24]}.{tag}@{_hostname(rt)}>"


def _date(rt) -> str:
    import email.utils      # here: it loads a dozen modules, and most runs build no message
    return email.utils.format_datetime(rt.now)


# --- bodies ------------------------------------------------------------------------------


def _crlf(text: str) -> str:
    return _LINE_END.sub("\r\n", text)


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body bytes): 8bit with CRLF line ends, or
    quoted-printable when a line is too long for SMTP or the text holds NUL."""
    raw = _crlf(_no_surrogates(text)).encode("utf-8")
    if b"\0" not in raw and all(len(line) <= 998 for line in raw.split(b"\r\n")):
        return "8bit", raw
    import quopri
    qp = quopri.encodestring(raw.replace(b"\r\n", b"\n"))
    return "quoted-printable", qp.replace(b"\n", b"\r\n")


_FIELD = lazy(r"(?s)([!-9;-~]+)[ \t]*:(.*)")


def _mime_entity(reason: str) -> tuple[list[str], bytes]:
    """A vacation :mime reason split into its MIME header fields (Content-* only,
    re-written clean) and its body. A reason that does not start with a header block is
    all body."""
    text = _crlf(_no_surrogates(reason))
    head, sep, body = text.partition("\r\n\r\n")
    if text.startswith("\r\n"):
        return [], text[2:].encode("utf-8")
    if not sep:
        return [], text.encode("utf-8")
    fields: list[list[str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip(" \t")
            continue
        m = _FIELD.fullmatch(line)
        if m is None:
            return [], text.encode("utf-8")
        fields.append([m.group(1), m.group(2)])
    out = []
    for name, value in fields:
        if not name.lower().startswith("content-") or len(name) > 60:
            continue
        value = header_text(value, decode=False)
        out.append(_fold(name, _SPACED_WORDS.findall(" " + value) or [""]))
    return out, body.encode("utf-8")


def _join(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


# --- the messages -------------------------------------------------------------------------


def vacation_reply(
    rt,
    *,
    to: str,
    from_addr: str,
    subject: str,
    reason: str,
    mime: bool,
    in_reply_to: str | None,
    references: str | None,
    to_field: str | None = None,
) -> bytes:
    """The auto-reply. `to` is the addr-spec it goes to, `from_addr` one mailbox
    (HeaderError otherwise), `subject` text (cleaned here again); `in_reply_to` and
    `references` are the answered message's raw Message-ID and References values: only
    well-formed ids are copied. `to_field`: the addr-spec the To field names when it is not
    `to` (sieve_vacation_to_header_ignore_envelope)."""
    lines = [
        "X-Sieve: Owlery Sieve",
        f"Message-ID: {_msgid(rt, 'vacation')}",
        f"Date: {_date(rt)}",
        address_field("From", [single_mailbox(from_addr)]),
        address_field("To", [("", _checked_spec(to_field or to))]),
        unstructured("Subject", subject),
        "Auto-Submitted: auto-replied (vacation)",
        "Precedence: bulk",
        # Exchange and Outlook answer auto-replies unless told not to (no RFC: their convention,
        # which Pigeonhole's replies carry too); one less auto-reply loop
        "X-Auto-Response-Suppress: All",
    ]
    parent = msg_ids(in_reply_to)[:1]
    if parent:
        refs = msg_ids(references)
        if len(refs) >= MAX_REFERENCES:
            refs = refs[:1] + refs[-(MAX_REFERENCES - 2) :]
        lines.append(_fold("In-Reply-To", parent))
        lines.append(_fold("References", refs + parent))
    lines.append("MIME-Version: 1.0")
    if mime:
        fields, body = _mime_entity(reason)
        return _join(lines + fields) + b"\r\n" + body
    cte, body = _body(reason)
    lines += ["Content-Type: text/plain; charset=utf-8", f"Content-Transfer-Encoding: {cte}"]
    return _join(lines) + b"\r\n" + body


def _checked_spec(spec: str) -> str:
    """An addr-spec we built (addr_spec) checked once more before it is written."""
    display, out = single_mailbox(spec)
    if display:
        raise HeaderError("expected a bare address")
    return out


def rejection_message(rt, reason: str) -> bytes:
    postmaster = rt.settings.sieve_postmaster_address
    boundary = _sha256_hex(rt.now.isoformat().encode())[:20]
    orig = rt.msg.to_bytes()
    recipient = header_text(rt.envelope.rcpt_to, decode=False)
    subj = header_text((rt.msg.header_raw("subject") or [""])[0], limit=MAX_SUBJECT)
    try:
        frm = address_field("From", [("Mail Delivery System", single_mailbox(postmaster)[1])])
    except HeaderError:
        frm = address_field("From", [("Mail Delivery System", "postmaster@localhost")])
    lines = ["X-Sieve: Owlery Sieve", f"Message-ID: {_msgid(rt, 'reject')}", f"Date: {_date(rt)}", frm]
    try:
        lines.append(address_field("To", [("", _from_path(rt.envelope.mail_from))]))
    except HeaderError:
        pass  # the MTA took this sender; the notice goes to it without a To field
    lines += [
        unstructured("Subject", "Rejected: " + subj),
        "Auto-Submitted: auto-replied (rejected)",
        "Precedence: bulk",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=disposition-notification;",
        f'\tboundary="{boundary}"',
    ]
    # the reason may hold lines past SMTP's 998 octets (RFC 5322 2.1.1): _body picks the encoding
    cte, text = _body(f"Your message to <{recipient}> was automatically rejected:\r\n{reason}")
    head = (
        _join(lines)
        + (
            f"\r\nThis is a MIME-encapsulated message\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Disposition: inline\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
        ).encode("utf-8")
        + text
    )
    # RFC 3798 3.2: Reporting-UA names this host; Original-Recipient is given when the
    # original recipient (ORCPT) is known, Original-Message-ID when the message has an id
    report = [f"Reporting-UA: {_hostname(rt)}; Owlery Sieve"]
    original = header_text(rt.envelope.orig_rcpt or "", decode=False)
    if original:
        report.append(f"Original-Recipient: rfc822; {original}")
    report.append(f"Final-Recipient: rfc822; {recipient}")
    report += [f"Original-Message-ID: {m}" for m in msg_ids((rt.msg.header_raw("message-id") or [None])[0])[:1]]
    report.append("Disposition: automatic-action/MDN-sent-automatically; deleted")
    part2 = (
        f"\r\n\r\n--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        + "".join(line + "\r\n" for line in report)
        + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    return head + part2.encode("utf-8") + orig + f"\r\n\r\n--{boundary}--\r\n".encode()


def _from_path(path: str) -> str:
    try:
        a = parse_path(path)
    except AddressError as e:
        raise HeaderError(str(e)) from None
    if a is None:
        raise HeaderError("null path")
    return addr_spec(a.local, a.domain)


def _auto_notified(rt) -> str:
    """Auto-Submitted of a notification (RFC 5436 2.7): auto-notified, with the owner-email
    parameter naming the script's owner (the user), so a recipient can tell whose filter sent
    it; the parameter is left out when the user's address cannot be written."""
    owner = rt.settings.sieve_user_email or rt.envelope.rcpt_to
    try:
        spec = single_mailbox(owner)[1] if rt.settings.sieve_user_email else _from_path(owner)
    except HeaderError:
        return "Auto-Submitted: auto-notified"
    quoted = spec.replace("\\", "\\\\").replace('"', '\\"')
    field = f'Auto-Submitted: auto-notified; owner-email="{quoted}"'
    return field if len(field) <= _LINE else f'Auto-Submitted: auto-notified;\r\n owner-email="{quoted}"'


def notify_mailto(
    rt,
    *,
    to: Sequence[str],
    from_addr: str,
    subject: str,
    body: str,
    headers: Sequence[tuple[str, str]],
    importance: str,
    cc: Sequence[str] = (),
) -> bytes:
    """A mailto notification. `to` and `cc` are mailboxes as the URI wrote them (each one
    mailbox), `from_addr` one mailbox (HeaderError otherwise), `subject` text, `headers`
    the URI's other (name, value) fields: values are cleaned and encoded here."""
    lines = [
        "X-Sieve: Owlery Sieve",
        f"Message-ID: {_msgid(rt, 'notify')}",
        f"Date: {_date(rt)}",
        address_field("From", [single_mailbox(from_addr)]),
    ]
    if to:  # a URI may name only Cc/Bcc recipients: then there is no To field
        lines.append(address_field("To", [single_mailbox(a) for a in to]))
    if cc:
        lines.append(address_field("Cc", [single_mailbox(a) for a in cc]))
    lines += [unstructured("Subject", subject), _auto_notified(rt), "Precedence: bulk"]
    if importance == "1":
        lines += ["X-Priority: 1 (Highest)", "Importance: High"]
    elif importance == "3":
        lines += ["X-Priority: 5 (Lowest)", "Importance: Low"]
    else:
        lines += ["X-Priority: 3 (Normal)", "Importance: Normal"]
    for k, v in headers:
        if _FIELD_NAME.fullmatch(k):
            lines.append(unstructured(k, v))
    cte, raw = _body(body)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", f"Content-Transfer-Encoding: {cte}"]
    return _join(lines) + b"\r\n" + raw


# --- abuse reports (vnd.dovecot.report, RFC 5965) -------------------------------------------


def _path_field(name: str, path: str | None) -> str | None:
    """'Name: <addr>' for an envelope address ("" is the null path <>); None when the
    address cannot be written (control characters, no domain)."""
    if path is None:
        return None
    if path in ("", "<>"):
        return f"{name}: <>"
    try:
        return f"{name}: <{_from_path(path)}>"
    except HeaderError:
        return None


def _crlf_bytes(data: bytes) -> bytes:
    return _LINE_END_BYTES.sub(b"\r\n", data)


def abuse_report(
    rt,
    *,
    feedback_type: str,
    text: str,
    to: str,
    from_mailbox: tuple[str, str],
    headers_only: bool,
    original: bytes,
    user: str | None,
) -> bytes:
    """An RFC 5965 feedback report about `original` (the message as received): a
    multipart/report (report-type=feedback-report) of the user's `text`, the
    message/feedback-report fields (Version, Feedback-Type, User-Agent, Original-Mail-From,
    Original-Rcpt-To, and Pigeonhole's Dovecot-Reporting-User naming `user`), and the message
    (message/rfc822) or its header (text/rfc822-headers, `headers_only`). `to` is the
    addr-spec it goes to, `from_mailbox` the (display, addr-spec) of its From field,
    `feedback_type` a checked MIME token. Written as Pigeonhole's report command writes it."""
    from owlery import __version__

    env = rt.envelope
    subj = (rt.msg.header_values("subject") or [None])[0]
    subject = "Report: " + (subj if subj is not None else "(message without subject)")
    original = _crlf_bytes(original)
    if headers_only:
        cut = original.find(b"\r\n\r\n")
        original = original if cut < 0 else original[: cut + 4]
        if cut < 0 and not original.endswith(b"\r\n"):
            original += b"\r\n"
    seed = f"{rt.now.isoformat()}\0{env.rcpt_to}\0{to}\0{feedback_type}"
    boundary = _sha256_hex(seed.encode("utf-8", "replace"))[:24] + "/report"
    text_bytes = _crlf(_no_surrogates(text)).encode("utf-8")
    while boundary.encode() in original or boundary.encode() in text_bytes:
        boundary = _sha256_hex(boundary.encode())[:24] + "/report"
    lines = [
        "X-Sieve: Owlery Sieve",
        f"Message-ID: {_msgid(rt, 'report')}",
        f"Date: {_date(rt)}",
        address_field("From", [from_mailbox]),
        address_field("To", [("", _checked_spec(to))]),
        unstructured("Subject", header_text(subject, decode=False, limit=MAX_SUBJECT)),
        "Auto-Submitted: auto-generated (report)",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=feedback-report;",
        f'\tboundary="{boundary}"',
    ]
    cte, body = _body(text + "\n")
    ascii_text = all(b < 0x80 for b in text_bytes)
    ctype = "text/plain; charset=us-ascii" if ascii_text else "text/plain; charset=utf-8"
    if cte == "8bit" and ascii_text:
        cte = "7bit"
    fields = ["Version: 1", f"Feedback-Type: {feedback_type}", f"User-Agent: Owlery/{__version__}"]
    fields += [
        f
        for f in (
            _path_field("Original-Mail-From", env.mail_from or ""),
            _path_field("Original-Rcpt-To", env.orig_rcpt or env.rcpt_to or None),
            _path_field("Dovecot-Reporting-User", user),
        )
        if f
    ]
    # RFC 2045 6.1: 7bit (the default) is 7-bit data only; an 8-bit original is labelled
    third = [
        "Content-Type: " + ("text/rfc822-headers" if headers_only else "message/rfc822"),
        "Content-Disposition: attachment",
    ]
    if any(b >= 0x80 for b in original):
        third.append("Content-Transfer-Encoding: 8bit")
    out = (
        _join(lines)
        + b"\r\nThis is a MIME-encapsulated message\r\n\r\n"
        + _join(
            [
                f"--{boundary}",
                f"Content-Type: {ctype}",
                f"Content-Transfer-Encoding: {cte}",
                "Content-Disposition: inline",
            ]
        )
        + b"\r\n"
        + body
        + b"\r\n"
        + _join([f"--{boundary}", "Content-Type: message/feedback-report", ""] + fields)
        + b"\r\n"
        + _join([f"--{boundary}"] + third)
        + b"\r\n"
        + original
        + (b"" if headers_only else b"\r\n")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return out
