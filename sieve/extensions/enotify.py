"""enotify (RFC 5435) with the mailto method (RFC 5436): notify, valid_notify_method,
notify_method_capability, and the :encodeurl modifier of `set`.

Values that reach the notification are re-checked at run time (variables can build them):
every mailto recipient must be one address that can be written in a header (else the URI
is invalid), :from must be exactly one valid mailbox (else a runtime error, as Pigeonhole),
and :message, the URI's subject and other header values are cleaned of control characters
by sieve.outgoing. Recipients are capped per notify action and per run (settings below);
the rest are dropped with a log line, as Pigeonhole drops a URI's extra recipients.
Tests: conformance extensions/enotify/; tests/sieve/test_generated_mail_safety.py;
tests/sieve/test_differential_fixes_s12.py (recipients);
tests/sieve/test_differential_fixes_s13b.py (the characters a URI may hold unencoded);
tests/sieve/test_enotify_nesting_s14.py (Subject and body: :message, URI subject and body).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from owlery.lazylog import get_logger
from sieve.actions import Notify
from sieve.address import AddressError, parse_address_list
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.outgoing import (
    MAX_SUBJECT,
    HeaderError,
    addr_spec,
    checked_from,
    header_text,
    loggable,
    notify_mailto,
    single_mailbox,
)

# sieve_notify_mailto_max_recipients and sieve_notify_mailto_max_run_recipients are declared in
# sieve/limits.py: extensions load only when a script requires them, settings always.

log = get_logger("owlery.sieve")

# URI header fields never copied into the notification: those the engine writes itself, trace
# fields, and In-Reply-To/References, whose msg-id syntax (RFC 5322 3.6.4) a URI value is not
# checked against and which would thread the notification under an unrelated message
# (Pigeonhole ignores them too, as reserved).
_SAFE_HEADERS_FORBIDDEN = {
    "received",
    "return-path",
    "auto-submitted",
    "from",
    "to",
    "bcc",
    "date",
    "message-id",
    "sender",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "x-priority",
    "importance",
    "precedence",
    "in-reply-to",
    "references",
}


def address_key(addr: str) -> str:
    """An address as duplicates are found: the domain without case, the local part with it
    (RFC 5321 2.4: a local part MUST be treated as case-sensitive), as Pigeonhole compares
    notification recipients (RFC 5436 2.3: one notification per recipient)."""
    local, at, domain = addr.rpartition("@")
    return f"{local}@{domain.lower()}" if at else addr


# RFC 6068 2: what a mailto URI may hold unencoded. In `to`, the characters of an addr-spec
# that a URI cannot hold, "%", the gen-delims but "@" and ":" ("/", "?", "#", "[", "]") and
# "&", ";", "=" MUST be percent-encoded; hfname and hfvalue are *qchar (qchar = unreserved /
# pct-encoded / some-delims), "=" also let through in a value, as Pigeonhole does.
_TO_CHARS = re.compile(r"[A-Za-z0-9._~!$'()*+,:@-]*")
_HFIELD_CHARS = re.compile(r"[A-Za-z0-9._~!$'()*+,;:@=-]*")


def _pct_decode(text: str) -> str | None:
    """A URI part with its %HH decoded, or None when the octets are not UTF-8 (RFC 6068 2:
    a character is percent-encoded as the octets of its UTF-8 form) or hold a NUL."""
    try:
        out = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\0" in out else out


def parse_mailto(uri: str):
    """(recipients, headers, body, to, shown) of a mailto: URI, or None when invalid; body
    is None when the URI has no body hfield (an empty one is an empty body)."""
    if not uri.lower().startswith("mailto:"):
        return None
    rest = uri[7:]
    to_part, _, query = rest.partition("?")
    recipients: list[str] = []
    headers: list[tuple[str, str]] = []
    body: str | None = None
    shown: dict[str, str] = {}  # address -> the item as written (display name kept)
    if re.search(r"%(?![0-9A-Fa-f]{2})", uri):
        return None
    if not _TO_CHARS.fullmatch(to_part.replace("%", "")):
        return None

    def addrs(text):
        if not text:
            return []
        out = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                return None
            try:
                al = parse_address_list(item)
            except AddressError:
                return None
            if len(al) != 1:
                return None
            written = " ".join(item.split())
            try:
                # the envelope address and the header form must both be writable
                spec = addr_spec(al[0].local, al[0].domain)
                single_mailbox(written)
            except HeaderError:
                return None
            # the address as SMTP takes it: a local part that needs quotes keeps them
            out.append(spec)
            shown.setdefault(address_key(spec), written)
        return out

    to_text = _pct_decode(to_part)
    r = addrs(to_text) if to_text is not None else None
    if r is None:
        return None
    recipients.extend(r)
    to_list = list(r)
    if query:
        pairs = query.split("&")
        for n, pair in enumerate(pairs):
            if not pair:
                if n and n == len(pairs) - 1:
                    continue  # a trailing "&" (Pigeonhole takes it)
                return None  # RFC 6068 2: hfield = hfname "=" hfvalue
            if not _HFIELD_CHARS.fullmatch(pair.replace("%", "")):
                return None
            k, eq, v = pair.partition("=")
            if not eq and n < len(pairs) - 1:
                return None  # RFC 6068 2: hfield = hfname "=" hfvalue (a last bare "?subject" is taken, as Pigeonhole)
            k, v = _pct_decode(k), _pct_decode(v)
            if k is None or v is None:
                return None
            if k.lower() != "body" and re.search(r"[\x00-\x08\x0a-\x1f]", v):
                # a header field body holds no control character but HTAB (RFC 5322 2.2:
                # no CR or LF outside folding, and no field is folded here), as Pigeonhole
                # refuses it; a body may hold line breaks
                return None
            if not k:
                continue  # hfname = *qchar: an empty name names no field
            if not re.fullmatch(r"[!-9;-~]+", k):
                return None
            kl = k.lower()
            if kl in ("to", "cc") and not v.strip():
                return None  # a "to" or "cc" field names at least one addr-spec
            if kl == "to":
                r = addrs(v)
                if r is None:
                    return None
                recipients.extend(r)
                to_list.extend(r)
            elif kl == "body":
                body = v
            elif kl == "cc":
                r = addrs(v)
                if r is None:
                    return None
                recipients.extend(r)
                headers.append(("Cc", r))
            else:
                # bcc lands here and is dropped unread with the other reserved fields: RFC
                # 5436 2.7 makes the recipients the URI's addresses plus its "to" and "cc"
                # URI headers only (Pigeonhole: "ignored reserved header field 'bcc'"), so a
                # bcc names no recipient and never widens the fan-out.
                headers.append((k, v))
    seen: set[str] = set()
    unique = []
    for a in recipients:
        if address_key(a) not in seen:
            seen.add(address_key(a))
            unique.append(a)
    return unique, headers, body, to_list, shown


def method_error(uri: str) -> str | None:
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri)
    if not m:
        return f"invalid scheme part for method URI '{uri}'"
    if m.group(1).lower() != "mailto":
        return f"invalid method '{m.group(1)}'"
    # A mailto URI without recipients ("mailto:", "mailto:?body=x") is valid (RFC 6068: the
    # `to` part is optional): valid_notify_method says true and a notify to it does nothing,
    # as in Pigeonhole (the compiler warns; see NO_RECIPIENTS).
    if parse_mailto(uri) is None:
        reason = _mailto_reason(uri[len(m.group()):])
        return f"mailto URI: {reason}" if reason else f"invalid mailto URI '{uri}'"
    return None


# the URI header fields Pigeonhole ignores with a warning (ntfy-mailto; the notification's own
# and trace fields)
_RESERVED_WARNED = ("auto-submitted", "received", "message-id", "data", "bcc", "in-reply-to", "references",
                    "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc",
                    "resent-msg-id", "from", "sender")


def _mailto_warnings(uri: str) -> list[str]:
    """What sievec warns about in a valid mailto URI: reserved fields, a second body."""
    out, bodies = [], 0
    for pair in uri.partition("?")[2].split("&") if "?" in uri else ():
        name = (_pct_decode(pair.partition("=")[0]) or "").lower()
        if name in _RESERVED_WARNED:
            out.append(f"ignored reserved header field '{name}'")
        elif name == "body":
            bodies += 1
            if bodies > 1:
                out.append("ignored duplicate body field")
    return out


def _mailto_reason(rest: str) -> str | None:
    """Why a mailto URI (after "mailto:") that parse_mailto refused is invalid, in Pigeonhole's
    words (its uri-mailto parser), or None when this reading finds nothing."""
    from sieve.extensions.core import address_reason
    if re.search(r"%(?![0-9A-Fa-f]{2})", rest):
        return "invalid % encoding"
    to_part, _, query = rest.partition("?")

    def recipients(text: str) -> str | None:
        for item in (text or "").split(","):
            reason = address_reason(item.strip())
            if reason and item.strip():
                return f"invalid recipient '{item.strip()}': {reason}"
        return None

    found = recipients(_pct_decode(to_part))
    if found or not query:
        return found
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        bad = re.search(r"[^A-Za-z0-9._~!$'()*+,;:@%-]", name)
        if bad:
            return f"invalid character '{bad.group()}' in header field name part"
        if not eq:
            return "invalid character '&' in header field name part" if pair != query.split("&")[-1] else None
        name, value = _pct_decode(name) or "", _pct_decode(value) or ""
        if name.lower() in ("to", "cc"):
            found = recipients(value)
            if found:
                return found
        elif name.lower() != "body" and re.search(r"[\x00-\x08\x0a-\x1f]", value):
            return "invalid header field body"
    return None


NO_RECIPIENTS = "mailto URI: notification URI specifies no recipients"


def _validate_notify(v, node):
    # One error, the first found in sievec's order: :importance, the method URI, then what
    # the method checks (:from, then each option)
    imp = node.tags.get("importance")
    # RFC 5435 3.3: the :importance argument is "1", "2" or "3", a constant as sievec takes it
    # (a string with a variable in it is refused: its value is not known to be one of them)
    if imp is not None and (not v.is_literal(imp) or imp.items[0].value not in ("1", "2", "3")):
        v.error(imp, f"invalid :importance value for notify command: {imp.items[0].value}")
        return
    if node.pos and v.is_literal(node.pos[0]):
        uri = node.pos[0].items[0].value
        err = method_error(uri)
        if err:
            v.error(node.pos[0], f"notify command: {err}")
            return
        for text in _mailto_warnings(uri):
            v.warning(node.pos[0], f"notify command: mailto URI: {text}")
        if not parse_mailto(uri)[0]:
            v.warning(node.pos[0], f"notify command: {NO_RECIPIENTS}")
    f = node.tags.get("from")
    if f is not None and v.is_literal(f):
        try:
            single_mailbox(f.items[0].value)
        except HeaderError:
            from sieve.extensions.core import address_error
            text = f.items[0].value
            v.error(f, "notify command: " + address_error(":from address", text, loggable(text), "for the mailto method"))
            return
    opts = node.tags.get("options")
    if opts is not None and v.is_literal(opts):
        for s in opts.items:
            # RFC 5435 :options, as sievec reads them: optionname = (ALPHA / DIGIT) *(ALPHA / DIGIT /
            # "." / "-" / "_"), "=", then a value without NUL, CR or LF
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*=[^\x00\r\n]*", s.value):
                # (sic: Pigeonhole says "notify command: " twice for a value, and shows the
                # octets of CR and LF as '?')
                what = "notify command: invalid option value" if re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*=", s.value) \
                    else "invalid option name"
                shown = re.sub(r"[\x00-\x1f]", "?", s.value)
                v.error(s, f"notify command: {what} specified in option '{shown}'")
                return
        if opts.items and node.pos and v.is_literal(node.pos[0]):
            # RFC 5436 defines no option for mailto: they are ignored, as sievec warns
            v.warning(opts, "notify command: method 'mailto' accepts no options")


def _checked_from(value: str | None) -> str | None:
    """outgoing.checked_from, its error worded as sieve-test words it."""
    try:
        return checked_from(value, "mailto method")
    except SieveRuntimeError:
        from sieve.extensions.core import address_error
        raise SieveRuntimeError("notify_action: " + address_error(":from address", value, loggable(value),
                                                                  "for the mailto method")) from None


def _run_notify(rt, node):
    uri = rt.s(node.pos[0])
    err = method_error(uri)
    if err:
        # (sieve-test's words at run time: "invalid notify method", a mailto error as the action's)
        if err.startswith("invalid method "):
            err = "invalid notify method " + err[len("invalid method "):]
        elif err.startswith("mailto URI: "):
            err = "notify_action: " + err
        raise SieveRuntimeError(loggable(err, 300))
    recipients, headers, body, to_list, shown = parse_mailto(uri)
    if not recipients:
        log.warning("sieve: notify: rcpt=<%s> %s: %s", loggable(rt.envelope.rcpt_to), NO_RECIPIENTS, loggable(uri, 300))
        return
    importance = rt.s(node.tags["importance"]) if "importance" in node.tags else "2"
    from_addr = _checked_from(rt.s(node.tags["from"]) if "from" in node.tags else None)
    text = rt.s(node.tags["message"]) if "message" in node.tags else None
    subj_hdr = [v for k, v in headers if k.lower() == "subject"]
    # The Subject (RFC 5436 2.6, 2.7): :message when given (even empty: it "overrides all
    # other mechanisms for determining the subject"), else the URI's subject hfield, else
    # the triggering message's subject, retained ("Notification" when it has none).
    if text is not None:
        subject = header_text(text, limit=MAX_SUBJECT)
    elif subj_hdr:
        subject = header_text(subj_hdr[0], limit=MAX_SUBJECT)
    else:
        orig = rt.msg.header_values("subject")  # (decoded already)
        subject = header_text(orig[0], decode=False, limit=MAX_SUBJECT) if orig else "Notification"
    # The body (RFC 5436 2.7): the URI's body hfield, else the implementation's: the
    # :message text (whole: the Subject may be cut, RFC 5436 2.6), or the default message
    # of RFC 5435 3.6 (the triggering message's From and Subject).
    if text is None:
        frm = (rt.msg.header_values("from") or [""])[0]
        subj = (rt.msg.header_values("subject") or [""])[0]
        text = f"{frm}: {subj}" if frm and subj else frm or subj or "Notification"
    # A recipient already notified by an earlier mailto action of this run, or named twice
    # in this URI, gets one notification only (RFC 5436 2.3 duplicate suppression).
    earlier_actions = [a for a in rt.result.actions if isinstance(a, Notify)]
    earlier = {address_key(r) for a in earlier_actions for r in a.recipients}
    recipients = [r for r in recipients if address_key(r) not in earlier]
    # Limits: per action, then what is left of the run's allowance.
    per_action = rt.settings.sieve_notify_mailto_max_recipients
    per_run = rt.settings.sieve_notify_mailto_max_run_recipients
    allowed = max(0, min(per_action, per_run - sum(len(a.recipients) for a in earlier_actions)))
    if len(recipients) > allowed:
        which = (
            "sieve_notify_mailto_max_recipients" if allowed == per_action else "sieve_notify_mailto_max_run_recipients"
        )
        log.info(
            "sieve: notify: recipients dropped: rcpt=<%s> limit=%s kept=%d dropped=%d to=%s",
            loggable(rt.envelope.rcpt_to),
            which,
            allowed,
            len(recipients) - allowed,
            loggable(",".join(f"<{r}>" for r in recipients[allowed:]), 300),
        )
        recipients = recipients[:allowed]
    kept = {address_key(r) for r in recipients}
    to_list = [r for r in to_list if address_key(r) in kept]
    listed = {address_key(r) for r in to_list} | earlier
    extra = []
    cc: list[str] = []
    for k, v in headers:
        kl = k.lower()
        if kl in _SAFE_HEADERS_FORBIDDEN or kl == "subject" or kl.startswith(("content-", "resent-")):
            continue
        if kl == "cc":
            for a in v:
                if address_key(a) in kept and address_key(a) not in listed:
                    listed.add(address_key(a))
                    cc.append(shown.get(address_key(a), a))
            continue
        extra.append((k, header_text(v)))
    if not recipients:
        return
    auto = any(v.strip().lower() != "no" for v in rt.msg.header_raw("auto-submitted"))
    msg = b""
    env_from = notify_envelope_from(rt, from_addr)
    if not auto:
        try:
            msg = notify_mailto(
                rt,
                to=[shown.get(address_key(a), a) for a in to_list],
                cc=cc,
                from_addr=from_addr or rt.settings.sieve_postmaster_address,
                subject=subject,
                body=text if body is None else body,
                headers=extra,
                importance=importance,
            )
        except HeaderError as e:
            raise SieveRuntimeError(f"notify: cannot compose the notification: {e}") from None
    rt.add(
        Notify(
            method=uri,
            from_addr=from_addr,
            importance=importance,
            options=tuple(rt.sl(node.tags["options"])) if "options" in node.tags else (),
            text=text,
            envelope_from=env_from,
            recipients=tuple(recipients) if msg else (),
            message=msg,
            line=node.line,
        ),
        cancels_keep=False,
    )


def notify_envelope_from(rt, from_addr: str | None) -> str:
    """MAIL FROM of a mailto notification (setting sieve_notify_envelope_from). 'default':
    the null sender when the notified message had one (no loops with bounces), else the
    :from address, else the postmaster."""
    mode = rt.settings.sieve_notify_envelope_from
    env = rt.envelope
    if mode == "sender":
        return env.mail_from or ""
    if mode == "recipient":
        return env.rcpt_to or ""
    if mode == "orig_recipient":
        return env.orig_rcpt or env.rcpt_to or ""
    if mode == "user_email":
        return rt.settings.sieve_user_email or env.rcpt_to or ""
    if mode == "postmaster":
        return rt.settings.sieve_postmaster_address
    if not env.mail_from:
        return ""
    if from_addr:
        try:
            parsed = parse_address_list(from_addr)
        except AddressError:
            parsed = []
        if len(parsed) == 1:
            return parsed[0].all
    return rt.settings.sieve_postmaster_address


def _run_valid(rt, node):
    return all(method_error(u) is None for u in rt.sl(node.pos[0]))


def _run_capability(rt, node):
    uri = rt.s(node.pos[0])
    cap = rt.s(node.pos[1]).lower()
    if method_error(uri) is not None:
        return False
    if cap != "online":
        return False
    return rt.match(node, ["maybe"], rt.sl(node.pos[2]))


EXTENSION = Extension(
    name="enotify",
    commands=(
        CommandDef(
            "notify",
            arg_names=("method",),
            positional=(STRING,),
            tags=(
                TagDef("from", STRING),
                TagDef("importance", STRING, param_words="a string parameter"),
                TagDef("options", STRINGLIST),
                TagDef("message", STRING),
            ),
            validate=_validate_notify,
            run=_run_notify,
        ),
        CommandDef(
            "valid_notify_method",
            arg_names=("notification-uris",),
            kind="test",
            positional=(STRINGLIST,),
            run=_run_valid,
        ),
        CommandDef(
            "notify_method_capability",
            arg_names=("notification-uri", "notification-capability", "key-list"),
            kind="test",
            positional=(STRING, STRING, STRINGLIST),
            match=True,
            run=_run_capability,
        ),
    ),
    extra_tags=(("set", TagDef("encodeurl", key="mod:encodeurl")),),
)
