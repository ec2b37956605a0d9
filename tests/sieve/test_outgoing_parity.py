"""The messages the Sieve engine sends (vacation replies, reject MDNs, mailto notifications,
redirected copies) against what Pigeonhole's `sieve-test -e` (Debian dovecot-sieve) sends for
the same script, message and envelope.

Both sides are captured as a recipient sees them: Owlery's through the delivery executor
(sieve/delivery/executor.py) with a recording submitter, so the envelope is the one the MTA
would get; Pigeonhole's from `sieve-test -e` (each sent message on stdout, its envelope sender
and kind in the log). Each message is then taken apart field by field (envelope sender and
recipients; every header field unfolded and RFC 2047 decoded; addresses and display names
apart; MIME type and parameters; the decoded body text; for a reject MDN, its three parts and
the MDN fields) and every difference is listed. Normalised away, because it legitimately
differs: Message-ID and Date values (only their syntax is compared), MIME boundaries, the
product and host in X-Sieve and Reporting-UA, header order and field-name case (RFC 5322
imposes neither), trailing line breaks of a text body, and the trace fields a delivery adds
(Return-Path, Delivered-To) in copies of the original. Every other difference must be
explained by an entry of ALLOWED, each with its reason (the RFC text that makes Pigeonhole
wrong, or why both are correct); an entry that no case uses fails the run, so the list cannot
go stale.

sieve-test cannot take a null envelope sender (-f "" and -f "<>" are refused), so what the
RFCs require for mail from <> is checked on Owlery alone (test_null_sender_*). The focused
tests at the end pin what this comparison found wrong in Owlery (sieve/outgoing.py,
sieve/extensions/enotify.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import os
import random
import re
import shutil
import subprocess
import tempfile
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from tests.sieve.differential import pigeonhole

USER = "user@example.net"
SENDER = "sender@example.org"
SETTINGS = f'sieve_postmaster_address = "{pigeonhole.POSTMASTER}"\n'

# --- the two engines ---------------------------------------------------------------------

_SENDING = re.compile(r"Info: sending message from <([^>]*)>:")
_ACTION = re.compile(r"Info: sieve: msgid=.*?: (vacation|redirect|reject|notify) action: (.*)")


@dataclasses.dataclass
class Run:
    status: str  # ok | compile-error | other
    sent: list[tuple[str, str, tuple[str, ...], bytes]]  # (kind, envelope from, recipients, message)
    log: str = ""


def sieve_test_e(ph: pigeonhole.Pigeonhole, script: bytes, message: bytes, mail_from: str,
                 extra_args: tuple[str, ...] = ()) -> Run | tuple[str, list[bytes], bytes]:
    """Run `sieve-test -e` (with `extra_args`, e.g. -x +EXT): a Run when the script did not
    compile or run, else (its log, each message it sent, its whole stdout)."""
    ph._cleanup()
    sp = ph._write("script.sieve", script)
    mp = ph._write("message.eml", message)
    argv = [pigeonhole.SIEVE_TEST, "-c", str(ph.home / "dovecot.conf"), "-C", "-e", *extra_args,
            "-f", mail_from, "-r", USER, "-a", USER, str(sp), str(mp)]
    proc = subprocess.run(argv, capture_output=True, timeout=30, env=ph.env, cwd=ph.home, user=ph.uid,
                          group=ph.gid, extra_groups=[] if ph.uid is not None else None)
    log = proc.stderr.decode("utf-8", "replace")
    if "failed to compile sieve script" in log:
        return Run("compile-error", [], log)
    if "final result: success" not in log:
        return Run("other", [], log)
    out = proc.stdout
    m = re.search(rb"(?m)^RECIPIENT: ", out)
    bodies = [
        b for b in re.split(rb"(?m)^(?=X-Sieve: Pigeonhole Sieve)", out if m is None else out[: m.start()]) if b.strip()
    ]
    return log, bodies, out


def run_pigeonhole(ph: pigeonhole.Pigeonhole, script: bytes, message: bytes, mail_from: str) -> Run:
    ran = sieve_test_e(ph, script, message, mail_from)
    if isinstance(ran, Run):
        return ran
    log, bodies, out = ran
    recipients = [r.decode().strip() for r in re.findall(rb"(?m)^RECIPIENT: (.*)$", out)]
    # each "sending message from" is followed by the action's line, which names the recipients
    envs: list[tuple[str, str, int]] = []
    pending = None
    for line in log.splitlines():
        s = _SENDING.search(line)
        if s:
            pending = s.group(1)
            continue
        a = _ACTION.search(line)
        if a and pending is not None:
            n = len(re.findall(r"<[^>]*>", a.group(2))) if a.group(1) == "notify" else 1
            envs.append((a.group(1), pending, n))
            pending = None
    assert len(bodies) == len(envs), log
    sent, i = [], 0
    for (kind, env, n), body in zip(envs, bodies):
        sent.append((kind, env, tuple(recipients[i : i + n]), body))
        i += n
    assert i == len(recipients), (recipients, log)
    return Run("ok", sent, log)


class Recorder:
    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []

    def send(self, env_from, rcpts, message):
        self.sent.append((env_from, list(rcpts), message))


def _kind(message: bytes) -> str:
    if message.startswith(b"X-Sieve-Redirected-From:"):
        return "redirect"
    auto = " ".join(header_values(message, "auto-submitted"))
    if "(vacation)" in auto:
        return "vacation"
    if "(rejected)" in auto:
        return "reject"
    if auto.startswith("auto-notified"):
        return "notify"
    return "?"


def run_owlery(tmp: Path, script: bytes, message: bytes, mail_from: str, settings: str = SETTINGS) -> Run:
    from sieve.api import SieveCompileError, compile_script

    try:
        compile_script(script, name="user", settings=parse_text(settings))
    except SieveCompileError:
        return Run("compile-error", [])
    d = Path(tempfile.mkdtemp(dir=tmp))
    (d / "user.sieve").write_bytes(script)
    rec = Recorder()
    ex = DeliveryExecutor(parse_text(settings), submitter=rec, state=MemoryStore(), program="test")
    outcome = ex.deliver(
        message.replace(b"\r\n", b"\n"),
        mail_from,
        USER,
        MailUser(USER, str(d / "Maildir"), str(d / "user.sieve")),
        original_recipient=USER,
    )
    if not outcome.ok:
        return Run("other", [], str(outcome.reply))
    return Run("ok", [(_kind(m), f, tuple(r), m) for f, r, m in rec.sent])


# --- taking a message apart --------------------------------------------------------------


def split_message(message: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """([(field name as written, raw unfolded value)], body) of a message with LF or CRLF."""
    text = message.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    fields: list[list[str]] = []
    for line in head.decode("utf-8", "surrogateescape").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += line
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append([name, value])
    return [(n, v) for n, v in fields], body


def header_values(message: bytes, name: str) -> list[str]:
    return [v.strip() for n, v in split_message(message)[0] if n.lower() == name]


def decoded(value: str) -> str:
    """An unstructured value as a reader sees it: encoded words decoded, white space runs as one."""
    try:
        value = str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        pass
    return " ".join(value.split())


_MSGID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_ADDRESS_FIELDS = ("from", "to", "cc", "reply-to", "sender")


def _header_items(message: bytes) -> dict[str, str]:
    """name -> comparable value for every header field (Message-ID and Date by syntax only)."""
    items: dict[str, str] = {}
    fields, _ = split_message(message)
    counts: dict[str, int] = {}
    for name, raw in fields:
        n = name.lower()
        k = counts[n] = counts.get(n, 0) + 1
        key = n if k == 1 else f"{n}#{k}"
        value = raw.strip()
        if n == "x-sieve":
            continue  # the product's name and version
        if n == "message-id":
            items[key] = "<valid>" if _MSGID.fullmatch(value) else f"<invalid {value!r}>"
        elif n == "date":
            try:
                email.utils.parsedate_to_datetime(value)
                items[key] = "<valid>"
            except (TypeError, ValueError):
                items[key] = f"<invalid {value!r}>"
        elif n in _ADDRESS_FIELDS:
            pairs = email.utils.getaddresses([value])
            items[key + ":addr"] = ", ".join(a.lower() for _, a in pairs)
            items[key + ":display"] = ", ".join(decoded(d) for d, _ in pairs)
        elif n == "content-type":
            mtype, _, params = value.partition(";")
            ps = sorted(
                f"{k.strip().lower()}={v.strip().strip(chr(34)).lower()}"
                for k, _, v in (p.partition("=") for p in params.split(";") if p.strip())
                if k.strip().lower() != "boundary"
            )
            items[key] = "; ".join([mtype.strip().lower()] + ps)
        elif n in ("content-transfer-encoding", "mime-version"):
            items[key] = value.lower()
        elif n in ("in-reply-to", "references"):
            items[key] = " ".join(value.split())
        else:
            items[key] = decoded(value)
    return items


def _text(body: bytes, cte: str, charset: str) -> str:
    if cte == "quoted-printable":
        import quopri

        body = quopri.decodestring(body)
    elif cte == "base64":
        import base64

        body = base64.b64decode(body)
    try:
        text = body.decode(charset or "us-ascii", "replace")
    except LookupError:
        text = body.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").rstrip("\n")


def _charset(content_type: str) -> str:
    m = re.search(r"charset=([^;]+)", content_type)
    return m.group(1) if m else "us-ascii"


def _parts(body: bytes, boundary: str) -> list[bytes]:
    chunks = (b"\n" + body.replace(b"\r\n", b"\n")).split(b"\n--" + boundary.encode())
    parts = []
    for c in chunks[1:]:
        if c.startswith(b"--"):
            break
        parts.append(c.split(b"\n", 1)[1] if b"\n" in c else b"")
    return parts


_TRACE = ("return-path", "delivered-to", "received", "x-sieve")


def describe(kind: str, message: bytes) -> dict[str, str]:
    """Every observable item of one sent message, as comparable strings."""
    items = {f"header:{k}": v for k, v in _header_items(message).items()}
    raw_head = message.replace(b"\r\n", b"\n").partition(b"\n\n")[0]
    items["header-lines-over-78"] = str(any(len(line) > 78 for line in raw_head.split(b"\n")))
    items["header-8bit"] = str(any(b > 127 for b in raw_head))
    fields, body = split_message(message)
    items["body-lines-over-998"] = str(any(len(line) > 998 for line in body.split(b"\n")))
    if kind == "redirect":
        # the copy: the original's fields in their order (trace fields aside), the body as is
        items.pop("header:message-id", None)  # compared below with the rest of the original
        kept = [(n.lower(), v.strip()) for n, v in fields if n.lower() not in _TRACE]
        items = {k: v for k, v in items.items() if not k.startswith("header:")}
        items["copy-fields"] = repr(kept)
        items["copy-body"] = repr(body.rstrip(b"\n"))
        return items
    ctype = (header_values(message, "content-type") or ["text/plain"])[0]
    cte = (header_values(message, "content-transfer-encoding") or ["7bit"])[0].lower()
    if not ctype.lower().startswith("multipart/"):
        items["body"] = _text(body, cte, _charset(ctype))
        return items
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1)
    parts = _parts(body, boundary)
    items["parts"] = str(len(parts))
    for i, part in enumerate(parts):
        pfields, pbody = split_message(part)
        for k, v in _header_items(part).items():
            items[f"part{i}:header:{k}"] = v
        ptype = (header_values(part, "content-type") or ["text/plain"])[0].lower()
        if ptype.startswith("text/"):
            pcte = (header_values(part, "content-transfer-encoding") or ["7bit"])[0].lower()
            items[f"part{i}:body"] = _text(pbody, pcte, _charset(ptype))
        elif ptype.startswith("message/disposition-notification"):
            for name, value in split_message(pbody)[0]:
                n = name.lower()
                v = " ".join(value.split())
                if n == "reporting-ua":
                    # RFC 3798 3.2.1: ua-name (this host) [; ua-product]: the names are the
                    # implementations' own, the shape is compared
                    ua_name, semi, _ = v.partition(";")
                    host_ok = re.fullmatch(r"[A-Za-z0-9.-]+", ua_name.strip()) is not None
                    v = ("<host>" if host_ok else f"<invalid ua-name {ua_name.strip()!r}>") + (
                        "; <product>" if semi else ""
                    )
                items[f"part{i}:mdn:{n}"] = v
        elif ptype.startswith("message/rfc822"):
            ofields, obody = split_message(pbody)
            items[f"part{i}:copy-fields"] = repr(
                [(n.lower(), v.strip()) for n, v in ofields if n.lower() not in _TRACE]
            )
            items[f"part{i}:copy-body"] = repr(obody.strip(b"\n"))
    return items


def rfc_problems(kind: str, message: bytes) -> list[str]:
    """What RFC 5322 / 2045 / 2047 forbid, checked on every message Owlery sends (a shared
    fault would not show as a difference): lines past 998 octets anywhere, raw 8-bit or
    control characters in a generated header, header lines past 78 characters, a generated
    message without Date, Message-ID or Auto-Submitted."""
    out = []
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if any(len(line) > 998 for line in lines):
        out.append("a line longer than 998 octets (RFC 5322 2.1.1)")
    if kind == "redirect":
        return out  # the original's header, as it came
    head = message.replace(b"\r\n", b"\n").partition(b"\n\n")[0]
    if re.search(rb"[\x00-\x08\x0b-\x1f\x7f-\xff]", head):
        out.append("raw 8-bit or control characters in the header (RFC 5322 2.2, RFC 2047)")
    if any(len(line) > 78 for line in head.split(b"\n")):
        out.append("a header line longer than 78 characters (RFC 5322 2.1.1)")
    names = {n.lower() for n, _ in split_message(message)[0]}
    out += [f"no {n} field" for n in ("date", "message-id", "auto-submitted", "from") if n not in names]
    return out


# --- the cases --------------------------------------------------------------------------

BASE = {
    "From": "Sender Name <sender@example.org>",
    "To": "user@example.net",
    "Subject": "Hello there",
    "Message-ID": "<abc@example.org>",
    "Date": "Mon, 1 Jan 2024 00:00:00 +0000",
}


def msg(body: str = "body\n", **fields: str | None) -> bytes:
    h = dict(BASE)
    for k, v in fields.items():
        k = k.replace("_", "-")
        h.pop(k, None)
        if v is not None:
            h[k] = v
    return ("".join(f"{k}: {v}\n" for k, v in h.items()) + "\n" + body).encode("utf-8", "surrogateescape")


VAC = 'require ["vacation", "variables"]; '
NOT = 'require ["enotify", "variables"]; '
REJ = 'require ["reject", "variables"]; '


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    script: str
    message: bytes
    mail_from: str = SENDER


HAND = (
    [
        Case("vacation-plain", VAC + 'vacation :days 1 "I am away.";', msg()),
        Case("vacation-subject-utf8", VAC + 'vacation :subject "Abwesenheit: Grüße aus München" "weg";', msg()),
        Case(
            "vacation-subject-long",
            VAC + 'vacation :subject "' + " ".join(f"word{i}" for i in range(40)) + '" "weg";',
            msg(),
        ),
        Case(
            "vacation-orig-subject-encoded",
            VAC + 'vacation "weg";',
            msg(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin"),
        ),
        Case("vacation-orig-subject-re", VAC + 'vacation "weg";', msg(Subject="Re: Hello")),
        Case("vacation-orig-subject-missing", VAC + 'vacation "weg";', msg(Subject=None)),
        Case("vacation-no-message-id", VAC + 'vacation "weg";', msg(Message_ID=None)),
        Case("vacation-bad-message-id", VAC + 'vacation "weg";', msg(Message_ID="not a message id")),
        Case("vacation-references", VAC + 'vacation "weg";', msg(References="<r1@x> <r2@x>")),
        Case("vacation-in-reply-to-only", VAC + 'vacation "weg";', msg(In_Reply_To="<p@x>")),
        Case("vacation-body-utf8", VAC + 'vacation "Ich bin weg. Grüße";', msg()),
        Case("vacation-body-long-line", VAC + 'vacation "' + "x" * 1200 + '";', msg()),
        Case(
            "vacation-mime",
            VAC + 'vacation :mime "Content-Type: text/plain; charset=iso-8859-1\r\n'
            'Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n";',
            msg(),
        ),
        Case("vacation-from", VAC + 'vacation :from "Me Myself <user@example.net>" "weg";', msg()),
        Case(
            "vacation-subject-crlf-variable",
            VAC
            + 'set "s" "Hi${hex:0d0a}Bcc: evil@x"; vacation :subject "${s}" "weg";'.replace(
                "require [", 'require ["encoded-character", '
            ),
            msg(),
        ),
        Case("vacation-reason-multiline", VAC + "vacation text:\nLine one\n.. dot line\nLine three\n.\n;", msg()),
        Case("vacation-in-cc", VAC + 'vacation "weg";', msg(To="someone@example.net", Cc="User <user@example.net>")),
        Case("vacation-in-bcc", VAC + 'vacation "weg";', msg(To="someone@example.net", Bcc="user@example.net")),
        Case(
            "vacation-addresses", VAC + 'vacation :addresses ["alias@example.net"] "weg";', msg(To="alias@example.net")
        ),
        Case("vacation-not-addressed", VAC + 'vacation "weg";', msg(To="someone@example.net")),
        Case(
            "vacation-from-tag-not-addressed",
            VAC + 'vacation :from "alias@example.net" "weg";',
            msg(To="alias@example.net"),
        ),
        Case("vacation-to-self", VAC + 'vacation "weg";', msg(), USER),
        Case(
            "vacation-sender-is-alias",
            VAC + 'vacation :addresses "alias@example.net" "weg";',
            msg(),
            "alias@example.net",
        ),
        Case("vacation-x-auto-response-suppress", VAC + 'vacation "weg";', msg(X_Auto_Response_Suppress="OOF")),
        Case("vacation-auto-submitted-no", VAC + 'vacation "weg";', msg(Auto_Submitted="no")),
        Case("vacation-precedence-first-class", VAC + 'vacation "weg";', msg(Precedence="first-class")),
        Case("reject", REJ + 'reject "Go away.\nSecond line";', msg()),
        Case(
            "reject-utf8-long",
            REJ + 'reject "Nicht erwünscht. ' + "lang " * 40 + '";',
            msg(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?="),
        ),
        Case("reject-no-message-id", REJ + 'reject "no";', msg(Message_ID=None)),
        Case("reject-bad-message-id", REJ + 'reject "no";', msg(Message_ID="<broken")),
        Case("reject-message-id-with-space", REJ + 'reject "no";', msg(Message_ID="<a b@example.org>")),
        Case("reject-long-line", REJ + 'reject "' + "y" * 1200 + '";', msg()),
        Case(
            "reject-latin1-subject",
            REJ + 'reject "no";',
            msg(Subject="Caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")),
        ),
        Case(
            "vacation-latin1-subject",
            VAC + 'vacation "weg";',
            msg(Subject="Caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")),
        ),
        Case("reject-auto-submitted", REJ + 'reject "no";', msg(Auto_Submitted="auto-replied")),
        Case("notify-message", NOT + 'notify :message "You got mail" "mailto:alert@example.com";', msg()),
        Case(
            "notify-uri-subject-body",
            NOT + 'notify "mailto:alert@example.com?subject=Hi%20there&body=Body%20text";',
            msg(),
        ),
        Case(
            "notify-from-importance",
            NOT + 'notify :from "Me <me@example.net>" :importance "1" "mailto:alert@example.com";',
            msg(),
        ),
        Case(
            "notify-utf8",
            NOT + 'notify :message "Neue Nachricht: Grüße" "mailto:alert@example.com?body=K%C3%B6rper";',
            msg(),
        ),
        Case(
            "notify-uri-headers",
            NOT + 'notify "mailto:alert@example.com?cc=cc@example.com&bcc=bcc@example.com'
            "&x-foo=bar&in-reply-to=%3Cq@x%3E&references=%3Cq@x%3E&keywords=k&comments=c&reply-to=r@example.com"
            '&sender=s@example.com&message-id=%3Cm@x%3E";',
            msg(),
        ),
        Case("notify-to-display", NOT + 'notify "mailto:Alert%20Person%20%3Calert@example.com%3E";', msg()),
        Case(
            "notify-from-encoded",
            NOT + 'notify :from "=?utf-8?q?J=C3=B6rg?= <me@example.net>" "mailto:alert@example.com";',
            msg(),
        ),
        Case(
            "notify-message-long",
            NOT + 'notify :message "' + " ".join(f"w{i}" for i in range(120)) + '" "mailto:alert@example.com";',
            msg(),
        ),
        Case("notify-two-recipients", NOT + 'notify "mailto:a@example.com,b@example.com";', msg()),
        Case("notify-auto-submitted", NOT + 'notify "mailto:alert@example.com";', msg(Auto_Submitted="auto-replied")),
        Case("notify-list", NOT + 'notify "mailto:alert@example.com";', msg(List_Id="<l.example.org>")),
        Case("redirect", 'redirect "other@example.com";', msg()),
        Case("redirect-return-path", 'redirect "other@example.com";', b"Return-Path: <bogus@example.org>\n" + msg()),
        Case("redirect-copy", 'require "copy"; redirect :copy "other@example.com";', msg()),
    ]
    + [
        Case(f"vacation-no-reply-{h.lower()}", VAC + 'vacation "weg";', msg(**{h.replace("-", "_"): v}))
        for h, v in [
            ("List-Id", "<l.example.org>"),
            ("List-Unsubscribe", "<mailto:u@x>"),
            ("List-Post", "<mailto:u@x>"),
            ("List-Help", "<mailto:u@x>"),
            ("List-Owner", "<mailto:u@x>"),
            ("List-Subscribe", "<mailto:u@x>"),
            ("List-Archive", "<mailto:u@x>"),
            ("Precedence", "bulk"),
            ("Precedence", "list"),
            ("Precedence", "junk"),
            ("Auto-Submitted", "auto-generated"),
            ("Auto-Submitted", "auto-replied"),
        ]
    ]
    + [
        Case(f"vacation-sender-{s.split('@')[0]}", VAC + 'vacation "weg";', msg(), s)
        for s in [
            "MAILER-DAEMON@example.org",
            "owner-list@example.org",
            "list-request@example.org",
            "list-bounces@example.org",
            "postmaster@example.org",
            "noreply@example.org",
            "no-reply@example.org",
            "listserv@example.org",
            "majordomo@example.org",
            "list-owner@example.org",
        ]
    ]
)

SEED = 20260601
GENERATED = 60

_SUBJECTS = [
    "Hello",
    "Re: Hello",
    "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
    "=?utf-8?b?w6TDtsO8?= mixed",
    "",
    "Fwd: " + "long " * 30,
    "Tab\there",
    "=?iso-8859-1?q?Caf=E9?=",
]
_MSGIDS = ["<abc@example.org>", None, "abc@example.org", "<a b@example.org>", "<x@y> <z@w>"]
_REFS = [None, "<r1@x>", "<r1@x> <r2@x> <r3@x>", "garbage"]
_TEXTS = ["away", "Gone fishing. Grüße", "Line1\nLine2", "x" * 100, "Caf\u00e9 \u2014 \u65e5\u672c"]


def generated(seed: int = SEED, n: int = GENERATED) -> list[Case]:
    """Seeded (script, message, envelope) cases: one sending action each, over pools of
    subjects, message ids, references and texts that stress encoding, folding and threading."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.choice(["vacation", "vacation", "reject", "notify", "redirect"])
        text = rnd.choice(_TEXTS).replace("\n", "\\n").replace('"', "")
        fields = {"Subject": rnd.choice(_SUBJECTS), "Message_ID": rnd.choice(_MSGIDS), "References": rnd.choice(_REFS)}
        if not fields["Subject"]:
            fields["Subject"] = None
        if kind == "vacation":
            tags = ""
            if rnd.random() < 0.4:
                tags += f' :subject "{rnd.choice(_TEXTS[:2] + ["Out: ${{1}}"])}"'
            if rnd.random() < 0.3:
                tags += ' :from "Holiday <user@example.net>"'
            script = VAC + f'if header :matches "subject" "*" {{}} vacation{tags} "{text}";'
        elif kind == "reject":
            script = REJ + f'reject "{text}";'
        elif kind == "notify":
            q = rnd.choice(["", "?subject=S%C3%BCbject", "?body=B%C3%B6dy", "?x-tag=t"])
            tags = rnd.choice(["", ' :message "Msg: ' + text + '"', ' :importance "3"'])
            script = NOT + f'notify{tags} "mailto:alert@example.com{q}";'
        else:
            script = 'redirect "other@example.com";'
        out.append(Case(f"gen-{i}-{kind}", script, msg(body=rnd.choice(["b\n", "Grüße\n", ""]), **fields)))
    return out


# --- explained differences -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Allowed:
    """A difference both sides may keep: `item` (a regex over the item name, prefixed by the
    message kind) differs with Pigeonhole's value `ph` and Owlery's `owl` when `when` holds."""

    key: str
    item: str
    when: object  # (case, ph value, owl value) -> bool
    reason: str


def _same_after(f):
    return lambda case, ph, owl: f(ph) == f(owl)


def _display_only(case, ph, owl):
    return True


_OWLERY_EXTRA_NO_REPLY = re.compile(r"^(postmaster|noreply|no-reply|mailer|.*-bounces|.*-owner)@", re.I)


ALLOWED = [
    Allowed(
        "display-names",
        r"(vacation|reject|notify):header:(from|to):display",
        _display_only,
        "Display names are optional (RFC 5322 3.4): Pigeonhole copies the sender's name into the reply's To "
        "and calls the postmaster 'Postmaster'; Owlery writes bare addresses and 'Mail Delivery System'. "
        "The addresses are compared apart and must agree.",
    ),
    Allowed(
        "reject-subject",
        r"reject:header:subject",
        _display_only,
        "RFC 5429 does not fix the MDN's Subject: Pigeonhole writes 'Automatically rejected mail', Owlery "
        "'Rejected: <original subject>'.",
    ),
    Allowed(
        "notify-default-subject",
        r"notify:header:subject",
        lambda c, ph, owl: ":message" not in c.script and "subject=" not in c.script,
        "Without :message or a subject in the URI, RFC 5436 2.7 says the subject SHOULD be retained "
        "from the triggering message: Owlery writes that subject, Pigeonhole 'Notification: <subject>'.",
    ),
    Allowed(
        "notify-default-body",
        r"notify:body",
        lambda c, ph, owl: "body=" not in c.script,
        "Without a body in the URI the body is the implementation's (RFC 5436 2.7): Pigeonhole 'Notification "
        "of new message.', Owlery the notification text.",
    ),
    Allowed(
        "ascii-label",
        r"notify:header:content-(type|transfer-encoding)",
        lambda c, ph, owl: (
            ph in ("text/plain; charset=us-ascii", "7bit") and owl in ("text/plain; charset=utf-8", "8bit")
        ),
        "An ASCII body is correctly labelled both ways (RFC 2045 6.2, RFC 2046 4.1.2: US-ASCII is a subset of "
        "UTF-8); Pigeonhole labels its ASCII default body us-ascii/7bit, Owlery always utf-8/8bit.",
    ),
    Allowed(
        "references-from-in-reply-to",
        r"vacation:header:references",
        lambda c, ph, owl: b"In-Reply-To:" in c.message and b"References:" not in c.message,
        "RFC 5322 3.6.4: without References, a parent's single In-Reply-To id is followed by its "
        "Message-ID in the reply's References. Owlery does so; Pigeonhole writes the Message-ID alone.",
    ),
    Allowed(
        "long-body-lines",
        r"vacation:(body-lines-over-998|header:content-transfer-encoding)",
        lambda c, ph, owl: ph in ("True", "8bit") and owl in ("False", "quoted-printable"),
        "RFC 5322 2.1.1: lines 'MUST be no more than 998 characters'; Pigeonhole sends a 1200-character "
        "8bit line, Owlery encodes the body quoted-printable.",
    ),
    Allowed(
        "reporting-ua-placeholder",
        r"reject:part1:mdn:reporting-ua",
        lambda c, ph, owl: ph == "<invalid ua-name '%s'>; <product>" and owl == "<host>; <product>",
        "RFC 3798 3.2.1: ua-name is the reporting host's name; Pigeonhole 0.5.19 writes an unformatted '%s'.",
    ),
    Allowed(
        "mdn-copy-headers-only",
        r"reject:part2:copy-body",
        lambda c, ph, owl: ph == "b''",
        "RFC 3798 3 / RFC 5429 2.2: the third part is the original message or a portion of it; Pigeonhole "
        "returns its header only, Owlery the whole message.",
    ),
    Allowed(
        "control-characters",
        r"vacation:header:subject",
        lambda c, ph, owl: " ".join(ph.replace("\ufffd", " ").split()) == owl,
        "A CR/LF in :subject may not end the field (RFC 5322 2.2); both keep one field: Pigeonhole writes "
        "U+FFFD for each control character, Owlery one space for a run.",
    ),
    Allowed(
        "mailto-comma-list",
        r"status",
        lambda c, ph, owl: ph == "compile-error" and "mailto:a@" in c.script,
        "RFC 6068 2: to = addr-spec *(\",\" addr-spec); Pigeonhole refuses the comma ('invalid character ',' "
        "in 'to' part'), Owlery sends to both.",
    ),
    Allowed(
        "mailto-utf8-header",
        r"status",
        lambda c, ph, owl: (
            ph == "compile-error" and re.search(r"subject=[^&\"]*%[89A-F][0-9A-F]", c.script) is not None
        ),
        "RFC 6068 2 and 5: header values of a mailto URI hold percent-encoded UTF-8, written into the "
        "message as RFC 2047 encoded words; Pigeonhole refuses the script ('invalid header field body').",
    ),
    Allowed(
        "references-without-message-id",
        r"vacation:header:(references|in-reply-to)",
        lambda c, ph, owl: owl == "<absent>" and not _valid_message_id(c.message),
        "RFC 5230 5.8: 'If the original message lacks a Message-ID, an In-Reply-To need not be generated, "
        "and References need not be changed.' Owlery writes neither; Pigeonhole copies the References (and "
        "turns an id with a space, '<a b@...>', which is no msg-id (RFC 5322 3.6.4), into '<ab@...>').",
    ),
    Allowed(
        "mdn-original-message-id-not-a-msg-id",
        r"reject:part1:mdn:original-message-id",
        lambda c, ph, owl: owl == "<absent>" and b"Message-ID: <a b@" in c.message,
        "RFC 8098 3.2.5: Original-Message-ID is the original message's Message-ID; '<a b@example.org>' "
        "is no msg-id (RFC 5322 3.6.4), Owlery leaves the field out, Pigeonhole writes '<ab@...>', an "
        "id the message never had.",
    ),
    Allowed(
        "references-only-msg-ids",
        r"vacation:header:references",
        lambda c, ph, owl: " ".join(t for t in ph.split() if _MSGID.fullmatch(t)) == owl,
        "RFC 5322 3.6.4: References is 1*msg-id; Pigeonhole copies text that is no msg-id ('garbage') into "
        "it, Owlery keeps the well-formed ids only.",
    ),
    Allowed(
        "header-line-length",
        r"(vacation|notify):header-lines-over-78",
        lambda c, ph, owl: ph == "True" and owl == "False",
        "RFC 5322 2.1.1: lines SHOULD be no more than 78 characters; Pigeonhole folds long subjects into "
        "longer lines (its fold keeps whole words), Owlery's lines stay within 76 (RFC 2047 2).",
    ),
    Allowed(
        "subject-cut",
        r"(vacation|notify):header:subject",
        lambda c, ph, owl: _cut(owl).startswith(_cut(ph)) or _cut(ph).startswith(_cut(owl)),
        "How far a very long subject is kept is a choice: Pigeonhole cuts it shorter and ends it with "
        "'...', Owlery keeps 256 characters and ends with '\u2026'; the kept text agrees.",
    ),
    Allowed(
        "redirect-adds-message-id",
        r"redirect:copy-fields",
        lambda c, ph, owl: (
            [f for f in eval(ph) if not (f[0] == "message-id" and f[1].startswith("<dovecot-sieve-"))] == eval(owl)
        ),
        "Pigeonhole gives a redirected copy without a valid Message-ID one of its own; RFC 5228 4.2 "
        "asks for the message unchanged but for loop control, which Owlery keeps to (RFC 5321 6.4 lets "
        "the submission server add one).",
    ),
    Allowed(
        "reject-long-line-encoding",
        r"reject:(body-lines-over-998|part0:header:content-transfer-encoding)",
        lambda c, ph, owl: ph in ("True", "8bit") and owl in ("False", "quoted-printable"),
        "RFC 5322 2.1.1: no line past 998 characters; for a reason with a longer line Pigeonhole sends 8bit "
        "anyway, Owlery quoted-printable.",
    ),
    Allowed(
        "no-reply-senders",
        r"count",
        lambda c, ph, owl: bool(_OWLERY_EXTRA_NO_REPLY.match(c.mail_from)),
        "RFC 5230 4.5 / RFC 3834 2: a responder SHOULD NOT answer automatic senders and MAY refuse more; "
        "Owlery also skips postmaster, noreply, no-reply, mailer, *-bounces and *-owner (Pigeonhole only "
        "MAILER-DAEMON, owner-*, *-request, LISTSERV, majordomo).",
    ),
]


def _valid_message_id(message: bytes) -> bool:
    values = header_values(message, "message-id")
    return bool(values) and _MSGID.fullmatch(values[0].split()[0] if values[0].split() else "") is not None


def _cut(subject: str) -> str:
    return subject.rstrip(".\u2026 ")


def compare(case: Case, ph: Run, owl: Run) -> tuple[list[str], set[str]]:
    """(unexplained differences, keys of the ALLOWED entries used)."""
    diffs: list[tuple[str, str, str]] = []
    if ph.status != owl.status:
        diffs.append(("status", ph.status, owl.status))
    elif len(ph.sent) != len(owl.sent):
        diffs.append(("count", str([k for k, *_ in ph.sent]), str([k for k, *_ in owl.sent])))
    else:
        for (pk, pf, pr, pm), (ok, of, orc, om) in zip(sorted(ph.sent), sorted(owl.sent)):
            if pk != ok:
                diffs.append(("kind", pk, ok))
                continue
            if pf != of:
                diffs.append((f"{pk}:envelope-from", pf, of))
            if sorted(pr) != sorted(orc):
                diffs.append((f"{pk}:recipients", ", ".join(sorted(pr)), ", ".join(sorted(orc))))
            a, b = describe(pk, pm), describe(ok, om)
            for item in sorted(set(a) | set(b)):
                if a.get(item) != b.get(item):
                    diffs.append((f"{pk}:{item}", a.get(item, "<absent>"), b.get(item, "<absent>")))
    unexplained, used = [], set()
    for item, pv, ov in diffs:
        for al in ALLOWED:
            if re.fullmatch(al.item, item) and al.when(case, pv, ov):
                used.add(al.key)
                break
        else:
            unexplained.append(f"{case.name}: {item}: pigeonhole={pv!r} owlery={ov!r}")
    return unexplained, used


# --- the parity run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-outgoing-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", ()), d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _pair(engines, case: Case) -> tuple[Run, Run]:
    ph, tmp = engines
    script = case.script.encode("utf-8")
    return run_pigeonhole(ph, script, case.message, case.mail_from), run_owlery(
        tmp, script, case.message, case.mail_from
    )


def test_outgoing_messages_agree_with_pigeonhole(engines):
    """Every hand-written and generated case: no difference that ALLOWED does not explain, and
    every ALLOWED entry explains at least one difference (none is stale)."""
    problems, used, sent = [], set(), 0
    for case in HAND + generated():
        ph, owl = _pair(engines, case)
        assert ph.status != "other", f"{case.name}: sieve-test failed:\n{ph.log[-1500:]}"
        sent += len(ph.sent)
        for kind, _, _, m in owl.sent:
            problems += [f"{case.name}: owlery {kind}: {p}" for p in rfc_problems(kind, m)]
        unexplained, u = compare(case, ph, owl)
        problems += unexplained
        used |= u
    assert not problems, "\n".join(problems)
    assert sent >= 60, "too few messages were compared"
    assert {a.key for a in ALLOWED} - used == set(), "allow-list entries no case needs"


def test_generated_cases_are_fixed_by_the_seed():
    assert generated() == generated() and len({c.name for c in generated()}) == GENERATED


# --- null envelope sender: Owlery alone (sieve-test refuses -f <>) -----------------------


def test_null_sender_gets_no_vacation_reply_and_no_reject_notice(tmp_path):
    """RFC 5230 4.5 / RFC 3834 2: never answer <>; RFC 5429 2.1: a rejection goes to the
    envelope sender, and <> has none (RFC 3798 2.1 MDNs are never sent to <>)."""
    run = run_owlery(tmp_path, (VAC + 'vacation "weg";').encode(), msg(), "")
    assert run.status == "ok" and run.sent == []
    # no notice to send: the rejection is given in the LMTP/SMTP dialogue instead (RFC 5429 2.1.1)
    run = run_owlery(tmp_path, (REJ + 'reject "no";').encode(), msg(), "")
    assert run.status == "other" and run.sent == [] and run.log.startswith("550 5.7.1")


def test_null_sender_notification_goes_from_null_sender(tmp_path):
    """RFC 5436 2.7: when the triggering message's envelope sender is <>, the notification's is
    <> too (no loop through a bounce)."""
    run = run_owlery(tmp_path, (NOT + 'notify :from "me@example.net" "mailto:alert@example.com";').encode(), msg(), "")
    [(kind, env_from, rcpts, _)] = run.sent
    assert (kind, env_from, rcpts) == ("notify", "", ("alert@example.com",))


def test_null_sender_redirect_keeps_null_sender(tmp_path):
    """RFC 5228 4.2: the redirected copy keeps the envelope sender, <> included."""
    run = run_owlery(tmp_path, b'redirect "other@example.com";', msg(), "")
    [(kind, env_from, rcpts, _)] = run.sent
    assert (kind, env_from, rcpts) == ("redirect", "", ("other@example.com",))


# --- what the comparison found wrong in Owlery --------------------------------------------


def _only(tmp_path, script: str, message: bytes | None = None, kind: str | None = None) -> bytes:
    run = run_owlery(tmp_path, script.encode(), msg() if message is None else message, SENDER)
    [(k, _, _, m)] = run.sent
    assert kind is None or k == kind
    return m


def test_reject_mdn_names_original_recipient_and_message_id(tmp_path):
    """RFC 3798 3.2.3: Original-Recipient when the original recipient is known; 3.2.5:
    Original-Message-ID when the message has a Message-ID."""
    m = _only(tmp_path, REJ + 'reject "no";', kind="reject")
    items = describe("reject", m)
    assert items["part1:mdn:original-recipient"] == f"rfc822; {USER}"
    assert items["part1:mdn:original-message-id"] == "<abc@example.org>"


def test_reject_mdn_without_message_id_has_no_original_message_id(tmp_path):
    m = _only(tmp_path, REJ + 'reject "no";', msg(Message_ID="<broken"), kind="reject")
    assert "part1:mdn:original-message-id" not in describe("reject", m)


def test_reject_notice_with_a_long_reason_keeps_lines_short(tmp_path):
    """RFC 5322 2.1.1: no line past 998 octets; the reason's text part is then quoted-printable."""
    m = _only(tmp_path, REJ + 'reject "' + "y" * 1200 + '";', kind="reject")
    assert rfc_problems("reject", m) == []
    assert describe("reject", m)["part0:body"].endswith("rejected:\n" + "y" * 1200)


def test_reject_mdn_reporting_ua_names_this_host(tmp_path):
    """RFC 3798 3.2.1: ua-name is the host's name, not 'localhost'."""
    import socket

    m = _only(tmp_path, REJ + 'reject "no";', kind="reject")
    ua = re.search(rb"Reporting-UA: ([^;\r\n]*);", m).group(1).decode()
    assert ua == (re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname()) or "localhost")


def test_notification_auto_submitted_names_its_owner(tmp_path):
    """RFC 5436 2.7: Auto-Submitted: auto-notified with the owner-email parameter."""
    m = _only(tmp_path, NOT + 'notify "mailto:alert@example.com";', kind="notify")
    assert header_values(m, "auto-submitted") == [f'auto-notified; owner-email="{USER}"']


def test_notification_ignores_uri_in_reply_to_and_references(tmp_path):
    """A URI's In-Reply-To/References are not copied: their msg-id syntax (RFC 5322 3.6.4) is
    not checked, and they would thread the notification under another message."""
    m = _only(
        tmp_path,
        NOT + 'notify "mailto:alert@example.com?in-reply-to=not%20an%20id&references=%3Cq@x%3E&x-a=b";',
        kind="notify",
    )
    names = [n.lower() for n, _ in split_message(m)[0]]
    assert "in-reply-to" not in names and "references" not in names and "x-a" in names


def test_vacation_reply_asks_exchange_not_to_answer(tmp_path):
    """X-Auto-Response-Suppress: All (Microsoft's convention, which Pigeonhole's replies carry):
    an Exchange out-of-office does not answer the reply, one loop less."""
    m = _only(tmp_path, VAC + 'vacation "weg";', kind="vacation")
    assert header_values(m, "x-auto-response-suppress") == ["All"]


def test_owner_email_is_quoted_and_folded_when_long(tmp_path):
    long_local = "a" * 70
    settings = SETTINGS + f'sieve_user_email = "{long_local}@example.net"\n'
    run = run_owlery(tmp_path, (NOT + 'notify "mailto:alert@example.com";').encode(), msg(), SENDER, settings)
    [(_, _, _, m)] = run.sent
    # a quoted-string cannot be folded: the parameter goes on a line of its own
    assert f'Auto-Submitted: auto-notified;\r\n owner-email="{long_local}@example.net"\r\n'.encode() in m
    assert header_values(m, "auto-submitted") == [f'auto-notified; owner-email="{long_local}@example.net"']


def test_parity_harness_sees_dates_and_ids_by_syntax_only():
    a = describe("vacation", b"Message-ID: <1@h>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n")
    b = describe(
        "vacation",
        b"Message-ID: <2@k>\r\nDate: "
        + email.utils.format_datetime(dt.datetime(2030, 5, 5, tzinfo=dt.timezone.utc)).encode()
        + b"\r\n\r\nx",
    )
    assert a == b
    bad = describe("vacation", b"Message-ID: nope\r\n\r\nx")
    assert bad["header:message-id"].startswith("<invalid")
