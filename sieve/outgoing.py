"""Messages the engine composes: vacation replies (RFC 5230/3834), rejection MDNs
(RFC 5429) and mailto notifications (RFC 5436), as ready bytes for the delivery to send.

Pure functions of the run state. Tests: conformance vacation/, reject/, enotify/.
"""

from __future__ import annotations

import email.utils
import hashlib

from email.header import Header


def _hdr(value: str) -> str:
    if all(ord(c) < 128 for c in value):
        return value
    # undecodable bytes of the script or message (surrogate escapes) cannot be encoded
    clean = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return Header(clean, "utf-8").encode()


def _msgid(rt, tag: str) -> str:
    h = hashlib.sha256((tag + rt.now.isoformat() + rt.envelope.rcpt_to).encode("utf-8", "replace")).hexdigest()
    return f"<{h[:24]}.{tag}@{rt.environment.get('host', 'localhost')}>"


def _date(rt) -> str:
    return email.utils.format_datetime(rt.now)


def _body_text(text: str) -> bytes:
    b = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return b.encode("utf-8", "surrogateescape")


def vacation_reply(rt, *, to: str, from_addr: str, subject: str, reason: str, mime: bool,
                   in_reply_to: str | None, references: str | None) -> bytes:
    lines = [
        "X-Sieve: Owlery Sieve",
        f"Message-ID: {_msgid(rt, 'vacation')}",
        f"Date: {_date(rt)}",
        f"From: {_hdr(from_addr)}",
        f"To: <{to}>",
        f"Subject: {_hdr(subject)}",
        "Auto-Submitted: auto-replied (vacation)",
        "Precedence: bulk",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
        lines.append(f"References: {(references + ' ') if references else ''}{in_reply_to}")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    if mime:
        return head + b"\r\nMIME-Version: 1.0\r\n" + _body_text(reason)
    ctype = b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" \
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    return head + ctype + _body_text(reason)


def rejection_message(rt, reason: str) -> bytes:
    postmaster = rt.settings.sieve_postmaster_address
    boundary = hashlib.sha256(rt.now.isoformat().encode()).hexdigest()[:20]
    orig = rt.msg.to_bytes()
    recipient = rt.envelope.rcpt_to
    subj = (rt.msg.header_values("subject") or [""])[0]
    head = (f"X-Sieve: Owlery Sieve\r\nMessage-ID: {_msgid(rt, 'reject')}\r\nDate: {_date(rt)}\r\n"
            f"From: Mail Delivery System <{postmaster}>\r\nTo: <{rt.envelope.mail_from}>\r\n"
            f"Subject: {_hdr('Rejected: ' + subj)}\r\nAuto-Submitted: auto-replied (rejected)\r\n"
            f"Precedence: bulk\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=disposition-notification;\r\n"
            f"\tboundary=\"{boundary}\"\r\n\r\nThis is a MIME-encapsulated message\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Disposition: inline\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"Your message to <{recipient}> was automatically rejected:\r\n")
    part2 = (f"\r\n\r\n--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
             f"Reporting-UA: localhost; Owlery Sieve\r\nFinal-Recipient: rfc822; {recipient}\r\n"
             f"Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n"
             f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n")
    return (head.encode("utf-8", "surrogateescape") + _body_text(reason) + part2.encode("utf-8")
            + orig + f"\r\n\r\n--{boundary}--\r\n".encode())


def notify_mailto(rt, *, to: list[str], from_addr: str, subject: str, body: str,
                  headers: list[tuple[str, str]], importance: str) -> bytes:
    lines = [
        "X-Sieve: Owlery Sieve",
        f"Message-ID: {_msgid(rt, 'notify')}",
        f"Date: {_date(rt)}",
        f"From: {_hdr(from_addr)}",
        f"To: {_hdr(', '.join(to))}",
        f"Subject: {_hdr(subject)}",
        "Auto-Submitted: auto-notified",
        "Precedence: bulk",
    ]
    if importance == "1":
        lines.append("X-Priority: 1 (Highest)")
        lines.append("Importance: High")
    elif importance == "3":
        lines.append("X-Priority: 5 (Lowest)")
        lines.append("Importance: Low")
    else:
        lines.append("X-Priority: 3 (Normal)")
        lines.append("Importance: Normal")
    for k, v in headers:
        lines.append(f"{k}: {_hdr(v)}")
    lines.append("MIME-Version: 1.0")
    lines.append("Content-Type: text/plain; charset=utf-8")
    lines.append("Content-Transfer-Encoding: 8bit")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + _body_text(body)
