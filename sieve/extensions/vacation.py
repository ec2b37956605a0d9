"""vacation (RFC 5230) and vacation-seconds (RFC 6131): auto-replies that obey RFC 3834
(no reply to lists, bulk, auto-submitted mail, null or own senders; only when the user
is a recipient) and a per-sender period tracked through Host.seen / Host.mark.

The reply message is composed here (sieve.outgoing); the delivery sends it. Values that
reach the reply are re-checked at run time, since variables can build them: :from must be
exactly one valid mailbox (else a runtime error, as Pigeonhole); an :addresses item that is
not one address is ignored with a log line; :subject and the answered message's Subject are
cleaned of control characters by sieve.outgoing; a sender that cannot be written in a
header gets no reply (log line). :handle is only hashed, never written.
Tests: conformance extensions/vacation/; tests/sieve/test_generated_mail_safety.py,
tests/sieve/test_pigeonhole_probes_s20b.py.
"""

from __future__ import annotations

from owlery.digests import sha256
from owlery.lazylog import get_logger
from sieve.actions import Vacation
from sieve.address import AddressError, parse_address_list, parse_address_items, parse_path, split_detail
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.outgoing import (MAX_SUBJECT, HeaderError, addr_spec, checked_from, header_text, loggable, msg_ids,
                            single_mailbox, vacation_reply)

log = get_logger("owlery.sieve")

# Senders that are no person (RFC 5230 4.5, RFC 3834 2: a responder MAY refuse more), by local
# part in any case: these names, at the start ("owner-") or the end of the part before the
# detail ("-bounces", "-owner"); "-request" anywhere in it, as Pigeonhole ("list-request+x",
# "list-request-x" are a list's request address)
_NO_REPLY_LOCALPARTS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "mailer",
                        "owner-", "-bounces", "-owner", "noreply", "no-reply")


def _automatic_sender(local: str, delimiters: str) -> bool:
    """Whether a sender's local part names a list, daemon or robot address."""
    local = local.lower()
    if "-request" in local:
        return True
    user = split_detail(local, delimiters)[0]  # with "-" as a delimiter, "list-owner" is both
    return any(local.startswith(p) if not p.startswith("-") else local.endswith(p) or user.endswith(p)
               for p in _NO_REPLY_LOCALPARTS)


def _from_first(v, node, args) -> bool:
    """A constant :from that is no address, reported as the tag is read (before the
    positional count), as Pigeonhole does (CommandDef.arguments_first)."""
    from sieve.parser import StrList, Tag
    if any(isinstance(a, StrList) and any("${" in s.value for s in a.items) for a in args):
        return False          # (encoded characters first: the binding decodes them)
    for tag, nxt in zip(args, args[1:], strict=False):
        if isinstance(tag, Tag) and tag.name == "from" and isinstance(nxt, StrList) and len(nxt.items) == 1 \
                and not nxt.bracketed and "${" not in nxt.items[0].value:
            before = v.errors
            node.tags["from"] = nxt
            _check_from(v, node)
            del node.tags["from"]
            return v.errors != before
    return False


def _check_from(v, node):
    f = node.tags.get("from")
    if f is not None and v.is_literal(f):
        text = f.items[0].value
        try:
            single_mailbox(text)
        except HeaderError:
            from sieve.extensions.core import address_error
            v.error(f, address_error(":from address", text, loggable(text), "for vacation action"))


def _validate(v, node):
    _check_from(v, node)
    addrs = node.tags.get("addresses")
    if addrs is not None and v.is_literal(addrs):
        # an item that is no address is only warned about: it can name no recipient, and the
        # run skips it (RFC 5230 4.5 makes no such item an error; Pigeonhole compiles it too)
        for s in addrs.items:
            try:
                single_mailbox(s.value)
            except HeaderError:
                v.warning(s, f"specified :addresses item '{loggable(s.value)}' is not a valid address; "
                             "it is ignored")
    if "seconds" in node.tags:
        # a period under the minimum is raised to it at run time: sievec says so at compile time
        # (RFC 5230 4.1, RFC 6131 2: the site's minimum applies; advisory, never an error)
        tag = node.tags.get("seconds:tag") or "days"
        value = node.tags["seconds"].value
        seconds = float(value) if tag == "seconds" else float(value) * 86400
        if seconds < periods(v.settings)[0]:
            v.warning(node.tags["seconds"], f"specified :{tag} value '{value}' is under the minimum")


def _norm(a: str) -> str:
    return a.strip().lower()


def _is_list_or_auto(rt) -> bool:
    msg = rt.msg
    for v in msg.header_raw("auto-submitted"):
        if v.strip().split(";")[0].strip().lower() != "no":
            return True
    for v in msg.header_raw("precedence"):
        if v.strip().lower() in ("bulk", "list", "junk"):
            return True
    for h in ("list-id", "list-owner", "list-unsubscribe", "list-post", "list-help", "list-subscribe",
              "list-archive", "x-auto-response-suppress"):
        if msg.has_header(h):
            if h == "x-auto-response-suppress":
                vals = " ".join(msg.header_raw(h)).lower()
                if "all" in vals or "oof" in vals:
                    return True
                continue
            return True
    return False


def _skip(rt, sender: str, why: str) -> None:
    log.info("sieve: vacation: reply skipped: rcpt=<%s> to=<%s> reason=%s",
             loggable(rt.envelope.rcpt_to), loggable(sender), why)


def _run(rt, node):
    # the script's values first: variables may have built them (RFC 5230 4.4, 4.5)
    from_value = rt.s(node.tags["from"]) if "from" in node.tags else None
    try:
        from_tag = checked_from(from_value, "vacation action")
    except SieveRuntimeError:
        # (as sieve-test words it)
        from sieve.extensions.core import address_error
        raise SieveRuntimeError(address_error(":from address", from_value, loggable(from_value),
                                              "for vacation action")) from None
    rt.result.script_name = rt.script_name_now()
    rt.result.note_vacation(node.line)
    sender = rt.envelope.mail_from
    if not sender:
        return
    try:
        sa = parse_path(sender)
    except AddressError:
        return
    if sa is None or sa.domain is None:
        return
    try:
        to = addr_spec(sa.local, sa.domain)
    except HeaderError as e:
        _skip(rt, sender, f"sender address cannot be written in a header ({e})")
        return
    if _automatic_sender(sa.local, rt.settings.sieve_recipient_delimiter):
        return
    if _is_list_or_auto(rt):
        return
    me = [rt.envelope.rcpt_to]
    try:
        ra = parse_path(rt.envelope.rcpt_to)
    except AddressError:
        ra = None
    if ra is not None and ra.domain is not None:
        # bob+lists@ is delivered to bob: the base address counts as the user's too
        user, detail = split_detail(ra.local, rt.settings.sieve_recipient_delimiter)
        if detail is not None:
            me.append(f"{user}@{ra.domain}")
    if rt.envelope.orig_rcpt and rt.settings.sieve_vacation_use_original_recipient:
        me.append(rt.envelope.orig_rcpt)
    if rt.settings.sieve_user_email:
        me.append(rt.settings.sieve_user_email)
    addresses = rt.sl(node.tags["addresses"]) if "addresses" in node.tags else []
    for item in addresses:
        try:
            single_mailbox(item)
        except HeaderError as e:
            log.info("sieve: vacation: :addresses item ignored: rcpt=<%s> item='%s' reason=%s",
                     loggable(rt.envelope.rcpt_to), loggable(item), e)
            continue
        me.append(item)
    me_norm = set()
    own = []   # (normalised, address) of the user's addresses: the envelope's first, then :addresses
    for m in me:
        try:
            for a in parse_address_list(m):
                me_norm.add(_norm(a.all))
                own.append((_norm(a.all), a))
        except AddressError:
            me_norm.add(_norm(m))
    if _norm(sa.all) in me_norm:
        return
    # the user must be an explicit recipient (RFC 5230 4.5). The reply comes from the user's
    # address that the first of these fields names (RFC 5230 5.3: the owner's address), as the
    # envelope or the script writes it, not as the message spells it; the envelope recipient
    # before an :addresses item when one field names both (as Pigeonhole)
    found = None
    for h in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"):
        # the valid addresses count, invalid items are skipped (as for the address test)
        items = [a for raw in rt.msg.header_raw(h) for a in parse_address_items(raw)[0]]
        named = {_norm(a.all) for a in items}
        # an address of the user's that is no address list itself matches as written: the
        # message's spelling of it is all there is to reply from
        found = (next((a for n, a in own if n in named), None)
                 or next((a for a in items if _norm(a.all) in me_norm), None))
        if found is not None:
            break
    if found is None and rt.settings.sieve_vacation_check_recipient:
        return
    reason = rt.s(node.pos[0])
    if "seconds" in node.tags and node.tags.get("seconds:tag") == "seconds":
        period = float(node.tags["seconds"].value)
        period = max(period, 0.0)
    elif "seconds" in node.tags:
        period = float(node.tags["seconds"].value) * 86400
    else:
        period = periods(rt.settings)[1]
    lo, _default, hi = periods(rt.settings)
    # RFC 6131: 0 replies every time, but only a site minimum of 0 allows it (as in Pigeonhole)
    period = max(period, lo)
    if hi > 0:  # 0: no upper limit (as Pigeonhole)
        period = min(period, hi)
    handle = rt.s(node.tags["handle"]) if "handle" in node.tags else \
        "\0".join([reason, rt.s(node.tags["subject"]) if "subject" in node.tags else "",
                   from_tag or "", " ".join(addresses), "mime" if node.tags.get("mime") else ""])
    key = "vacation:" + sha256(f"{_norm(sa.all)}\0{handle}".encode("utf-8", "surrogateescape")).hexdigest()
    if period > 0 and rt.host.seen(key):
        return
    subject_tag = rt.s(node.tags["subject"]) if "subject" in node.tags else ""
    if subject_tag:
        subject = header_text(subject_tag, limit=MAX_SUBJECT)
    else:
        # no :subject, or one that is "" (a variable that expanded to nothing): the default
        # subject, as Pigeonhole; RFC 3834 3.1.5 wants a Subject that says it is a response
        subject = default_subject(rt.settings, (rt.msg.header_raw("subject") or [None])[0])
    from_addr = from_tag if from_tag is not None else _default_from(rt, found)
    if from_addr is None:
        _skip(rt, sender, "no address of the user can be written in a header")
        return
    mid = (rt.msg.header_raw("message-id") or [None])[0]
    refs = (rt.msg.header_raw("references") or [None])[0]
    if refs is None:
        # RFC 5322 3.6.4: without References, a parent's single In-Reply-To id starts the chain
        parent = msg_ids((rt.msg.header_raw("in-reply-to") or [None])[0])
        refs = parent[0] if len(parent) == 1 else None
    try:
        reply = vacation_reply(rt, to=to, from_addr=from_addr, subject=subject, reason=reason,
                               mime=bool(node.tags.get("mime")), in_reply_to=mid, references=refs,
                               to_field=_to_field(rt, to))
    except HeaderError as e:
        _skip(rt, sender, f"reply cannot be composed ({e})")
        return
    rt.add(Vacation(to=to, from_addr=from_addr, subject=subject, reason=reason,
                    mime=bool(node.tags.get("mime")), handle=handle, period=period, tracking_key=key,
                    reply=reply, line=node.line), cancels_keep=False)


def periods(settings) -> tuple[float, float, float]:
    """(minimum, default, maximum) vacation period of these settings. They must hold
    minimum <= default <= maximum when a maximum is set (not 0): otherwise all three fall back
    to their declared defaults, with a warning, as Pigeonhole 0.5 does (2.4 refuses such a
    configuration); a set of settings that breaks the rule would otherwise answer with a period
    nobody asked for (the default clamped to the maximum, or the minimum overriding it)."""
    triple = (float(settings.sieve_vacation_min_period), float(settings.sieve_vacation_default_period),
              float(settings.sieve_vacation_max_period))
    return _checked_periods(triple)


def _checked_periods(triple: tuple[float, float, float]) -> tuple[float, float, float]:
    """The periods to use (a bad triple is warned about once per process, not per message)."""
    checked = _CHECKED_PERIODS.get(triple)
    if checked is None:
        checked = _CHECKED_PERIODS[triple] = _check_periods(triple)
    return checked


_CHECKED_PERIODS: dict[tuple[float, float, float], tuple[float, float, float]] = {}


def _check_periods(triple: tuple[float, float, float]) -> tuple[float, float, float]:
    lo, default, hi = triple
    if hi > 0 and not lo <= default <= hi:
        log.warning("sieve: vacation: invalid settings: violated sieve_vacation_min_period (%gs) <= "
                    "sieve_vacation_default_period (%gs) <= sieve_vacation_max_period (%gs); "
                    "using the defaults", lo, default, hi)
        from sieve.limits import (SIEVE_VACATION_DEFAULT_PERIOD, SIEVE_VACATION_MAX_PERIOD,
                                  SIEVE_VACATION_MIN_PERIOD)
        return (float(SIEVE_VACATION_MIN_PERIOD.default), float(SIEVE_VACATION_DEFAULT_PERIOD.default),
                float(SIEVE_VACATION_MAX_PERIOD.default))
    return triple


def default_subject(settings, original: str | None) -> str:
    """The reply's subject without :subject, as Pigeonhole: to a message with a Subject field
    (`original`, raw), the template with %$ (or %{subject}) replaced by that subject (decoded,
    cleaned of controls, bounded); to one without (None), sieve_vacation_default_subject, else
    "Automated reply"."""
    if original is None:
        if settings.sieve_vacation_default_subject:
            return header_text(settings.sieve_vacation_default_subject, decode=False, limit=MAX_SUBJECT)
        return "Automated reply"
    orig = header_text(original, limit=MAX_SUBJECT)
    parts = settings.sieve_vacation_subject_template.split("%%")
    text = "%".join(part.replace("%$", orig).replace("%{subject}", orig) for part in parts)
    return header_text(text, decode=False, limit=MAX_SUBJECT) or "Automated reply"


def _to_field(rt, to: str) -> str:
    """The addr-spec the reply's To field names: the envelope sender it goes to; with
    sieve_vacation_to_header_ignore_envelope, the first valid address of the answered message's
    first Sender, else Resent-From, else From field (Pigeonhole's order), whatever the envelope."""
    if rt.settings.sieve_vacation_to_header_ignore_envelope:
        for name in ("sender", "resent-from", "from"):
            raw = (rt.msg.header_raw(name) or [None])[0]
            if raw is None:
                continue
            for a in parse_address_items(raw)[0]:
                if a.domain is None:
                    continue
                try:
                    return addr_spec(a.local, a.domain)
                except HeaderError:
                    continue
    return to


def _default_from(rt, found) -> str | None:
    """The reply's From when the script gives none: the user's address as the message
    named it, else sieve_user_email, else the envelope recipient; the first that can be
    written in a header."""
    if found is not None:
        try:
            return addr_spec(found.local, found.domain)
        except HeaderError:
            pass
    if rt.settings.sieve_user_email:
        try:
            single_mailbox(rt.settings.sieve_user_email)
            return rt.settings.sieve_user_email
        except HeaderError:
            pass
    try:
        ra = parse_path(rt.envelope.rcpt_to)
        if ra is not None:
            return addr_spec(ra.local, ra.domain)
    except (AddressError, HeaderError):
        pass
    return None


EXTENSIONS = (
    Extension(name="vacation", commands=(CommandDef("vacation", arg_names=("reason",), positional=(STRING,), tags=(
        TagDef("days", NUMBER, group="period", key="seconds"),
        TagDef("subject", STRING), TagDef("from", STRING), TagDef("addresses", STRINGLIST),
        TagDef("mime"), TagDef("handle", STRING, repeat=True)), validate=_validate, run=_run,
        arguments_first=_from_first),)),
    # :seconds exists only with vacation-seconds: without it, an unknown tag (reported once
    # per script, as sievec does)
    Extension(name="vacation-seconds", implies=("vacation",),
              extra_tags=(("vacation", TagDef("seconds", NUMBER, group="period", key="seconds")),)),
)
