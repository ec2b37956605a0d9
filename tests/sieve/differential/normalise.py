"""Turns what each engine did into one comparable `Outcome`: run status, messages stored
(mailbox, IMAP flags, header fields), redirects, reject, vacation replies (sent or not, to,
from, subject), mailto notifications.

Pigeonhole's side comes from tests/sieve/differential/pigeonhole.py (Maildir files and sent
messages of a `sieve-test -e` run); Owlery's from sieve.api.Result, read the way Owlery's
delivery executes it. Header fields are compared unfolded and RFC 2047-decoded (with Python's
email package, not the engine's decoder), so folding and encoding choices do not count; the
trace fields each implementation adds to what it sends (X-Sieve, X-Sieve-Redirected-From,
Received, Delivered-To) are left out.
Used by tests/sieve/differential/runner.py; tests: tests/sieve/differential/test_differential.py.
"""

from __future__ import annotations

import dataclasses
import email.errors
import email.header
import email.utils
import re

from tests.sieve.differential.pigeonhole import Raw

_TRACE = {"x-sieve", "x-sieve-redirected-from"}
_SYSTEM = {"\\seen", "\\flagged", "\\answered", "\\draft", "\\deleted", "\\recent"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str                                   # ok | compile-error | error | crash | harness-error
    stores: tuple = ()                            # sorted (mailbox, flags)
    redirects: tuple = ()                         # sorted addresses
    rejects: tuple = ()                           # reasons
    vacations: tuple = ()                         # (to, from, subject)
    notifies: tuple = ()                          # recipients
    headers: tuple = ()                           # sorted (target, header fields) of stored/redirected mail

    FIELDS = ("status", "stores", "redirects", "rejects", "vacations", "notifies", "headers")

    def differences(self, other: "Outcome") -> list[str]:
        """Names of the fields that differ (status first; nothing else when status differs)."""
        if self.status != other.status:
            return ["status"]
        return [f for f in self.FIELDS if getattr(self, f) != getattr(other, f)]


def norm_mailbox(name: str) -> str:
    if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == "."):
        return "INBOX" + name[5:]
    return name


def norm_flags(flags) -> tuple[str, ...]:
    out = set()
    for f in flags:
        out.add(f.lower() if f.lower() in _SYSTEM else f)
    return tuple(sorted(out))


def norm_addr(a: str) -> str:
    a = a.strip()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    local, at, dom = a.rpartition("@")
    return f"{local}@{dom.lower()}" if at else a


def _decode(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return value


def header_fields(message: bytes) -> tuple[tuple[str, str], ...]:
    """(lower-cased name, unfolded decoded value) of each field, trace fields left out."""
    m = re.search(rb"\r?\n\r?\n", message)
    head = message if m is None else message[:m.start()]
    if message.startswith((b"\r\n", b"\n")):
        head = b""
    text = head.decode("utf-8", "surrogateescape")
    out: list[list[str]] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and out:
            out[-1][1] += line
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        out.append([name.strip(), value])
    fields = []
    for name, value in out:
        if name.lower() in _TRACE:
            continue
        fields.append((name.lower(), " ".join(_decode(value.strip(" \t")).split())))
    return tuple(fields)


def _addr_of(value: str) -> str:
    return norm_addr(email.utils.parseaddr(_decode(value))[1] or value)


def _find(fields, name: str) -> str:
    for n, v in fields:
        if n == name:
            return v
    return ""


def from_pigeonhole(raw: Raw) -> Outcome:
    if raw.status in ("compile-error", "harness-error", "crash"):
        return Outcome(raw.status)
    # a runtime error and a failed store both end in the fallback keep: one status, "error"
    status = raw.status
    stores = sorted((norm_mailbox(box), norm_flags(flags)) for box, flags, _ in raw.stored)
    headers = [(f"store:{norm_mailbox(box)}", header_fields(msg)) for box, _, msg in raw.stored]
    redirects, rejects, vacations, notifies = [], [], [], []
    for kind, _env_from, rcpt, msg in raw.sent:
        fields = header_fields(msg)
        if kind == "redirect":
            redirects.append(norm_addr(rcpt))
            headers.append((f"redirect:{norm_addr(rcpt)}", fields))
        elif kind == "vacation":
            vacations.append((norm_addr(rcpt), _addr_of(_find(fields, "from")), _find(fields, "subject")))
        elif kind == "reject":
            text = msg.decode("utf-8", "replace")
            m = re.search(r"was automatically rejected:\r?\n(.*?)\r?\n--", text, re.S)
            rejects.append(m.group(1).strip() if m else "?")
        elif kind == "notify":
            notifies.append(norm_addr(rcpt))
        else:
            return Outcome("harness-error")
    if status != "ok":
        # a failed run: what it stored is the fallback keep; compare that only
        return Outcome(status, tuple(stores))
    return Outcome(status, tuple(stores), tuple(sorted(redirects)), tuple(sorted(rejects)),
                   tuple(sorted(vacations)), tuple(sorted(notifies)), tuple(sorted(headers)))


def from_owlery(result, message: bytes, existing: set[str]) -> Outcome:
    """Owlery's Result as its delivery executes it: keep/fileinto/redirect use
    result.message_for(action) (the header as edited when the script asked for the action);
    a fileinto to a missing mailbox without :create, or to a name the store refuses, fails the
    delivery (Pigeonhole's sieve-test then keeps into INBOX only; so does this comparison)."""
    from sieve.api import Discard, DuplicateMark, FileInto, Keep, Notify, Redirect, Reject, Vacation
    from sieve.extensions.fileinto import store_name_error
    if result.status == "tempfail":
        return Outcome("harness-error")
    acts = result.effective_actions()
    if result.status != "ok":
        return Outcome("error", (("INBOX", ()),))
    stores, headers, redirects, rejects, vacations, notifies = [], [], [], [], [], []
    for a in acts:
        if isinstance(a, (Keep, FileInto)):
            box = norm_mailbox(a.mailbox)
            if isinstance(a, FileInto) and not a.create and box != "INBOX" and box not in existing:
                return Outcome("error", (("INBOX", ()),))
            if store_name_error(a.mailbox):
                # the store refuses the name (owlery.maildir): delivery keeps into INBOX instead
                return Outcome("error", (("INBOX", ()),))
            stores.append((box, norm_flags(a.flags)))
            headers.append((f"store:{box}", header_fields(result.message_for(a))))
        elif isinstance(a, Redirect):
            redirects.append(norm_addr(a.address))
            headers.append((f"redirect:{norm_addr(a.address)}", header_fields(result.message_for(a))))
        elif isinstance(a, Reject):
            rejects.append(a.reason.strip())
        elif isinstance(a, Vacation):
            vacations.append((norm_addr(a.to), _addr_of(a.from_addr), " ".join(_decode(a.subject).split())))
        elif isinstance(a, Notify):
            notifies.extend(norm_addr(x) for x in a.recipients)
        elif isinstance(a, (Discard, DuplicateMark)):
            pass
        else:
            return Outcome("harness-error")
    return Outcome("ok", tuple(sorted(stores)), tuple(sorted(redirects)), tuple(sorted(rejects)),
                   tuple(sorted(vacations)), tuple(sorted(notifies)), tuple(sorted(headers)))
