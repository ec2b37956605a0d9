"""notify (draft-martin-sieve-notify-01), the deprecated forerunner of enotify that scripts
migrated from Cyrus still require, with the only method Pigeonhole has: mailto, the :options
being the addresses to notify.

    notify [:method string] [:id string] [:options string-list] [<:low|:normal|:high>] [:message string]
    denotify [MATCH-TYPE string] [<:low|:normal|:high>]

Disabled by default, as in Pigeonhole (sieve_extensions_disabled); cannot be required with
enotify (also not through ihave): both define notify (Extension.conflicts). A notification
goes out through the path enotify's mailto notifications take (sieve.actions.Notify, composed by
sieve.outgoing.notify_mailto, sent by the delivery), under the same bounds: every recipient
one mailbox that can be written in a header, sieve_notify_mailto_max_recipients per action and
sieve_notify_mailto_max_run_recipients per run (the rest dropped with a log line), one
notification per recipient per run, sieve_max_notifications actions, header fields cleaned
by sieve.outgoing, nothing sent about an Auto-Submitted message, MAIL FROM as
sieve_notify_envelope_from says.
The :message text (default "$from$: $subject$") has its message variables replaced, names
without case: $from$, $env-from$, $subject$, $text$ and $text[n]$ (the first n bytes of the
body text, never cutting a character; $text$, $text[]$ and $text[0]$ at most _TEXT_MAX).
Where this departs from Pigeonhole 0.5.19, it follows the draft (allow-listed in the test):
no priority is :normal (Pigeonhole sends High), denotify with a match type cancels the earlier
notifications whose :id matches (Pigeonhole cancels none, or crashes with more than one), and
$text$ of a multipart message is its first text/plain part, else its first other text part
(Pigeonhole joins every text part, HTML as it is).
Tests: tests/sieve/test_deprecated_extensions.py (against sievec and sieve-test).
"""

from __future__ import annotations

import re

from owlery.lazylog import get_logger
from sieve.actions import Notify
from sieve.address import AddressError, parse_address_list
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.extensions.enotify import address_key, notify_envelope_from
from sieve.outgoing import HeaderError, addr_spec, loggable, notify_mailto, single_mailbox

log = get_logger("owlery.sieve")

NAME = "notify"
SUBJECT = "[SIEVE] New mail notification"        # Pigeonhole's (the draft leaves it to the method)
DEFAULT_MESSAGE = "$from$: $subject$"             # draft 3.1: "at least" From and Subject
_TEXT_MAX = 4096          # bytes of body text $text$ gives at most
_MESSAGE_MAX = 64 * 1024  # characters of a notification text once its variables are replaced
_IMPORTANCE = {"high": "1", "normal": "2", "low": "3"}
_PENDING = "notify:sent"  # rt.ext: [(Notify action, id or None, priority)] in the order given


def parse_option(text: str):
    """(addr-spec, mailbox as written) of one :options address, or an error text."""
    if not text.strip():
        return "empty address"
    try:
        al = parse_address_list(text)
    except AddressError as e:
        return str(e) or "invalid address"
    if len(al) != 1:
        return "not a single address"
    try:
        spec = addr_spec(al[0].local, al[0].domain)
        written = " ".join(text.split())
        single_mailbox(written)
    except HeaderError as e:
        return str(e) or "invalid address"
    return spec, written


def _validate_notify(v, node):
    method = node.tags.get("method")
    # sievec reads :method as written (a variable reference is no method name)
    if method is not None and method.items[0].value.lower() != "mailto":
        v.error(method, "the notify command of the deprecated notify extension only supports the "
                        "'mailto' notification method")
        return
    opts = node.tags.get("options")
    if opts is None:
        v.warning(node, "no :options (and hence recipients) specified for the notify command")
        return
    for s in opts.items:
        if s.parts is None:
            got = parse_option(s.value)
            if isinstance(got, str):
                v.error(s, f"specified :options address '{loggable(s.value)}' is invalid for the "
                           f"mailto notify method: {got}")
                return


def _validate_denotify(v, node):
    mt = node.tags.get("match:tag")
    provider = {"regex": "regex", "count": "relational", "value": "relational"}.get(mt)
    if provider and provider not in v.required:
        v.error(node, f"unknown tagged argument ':{mt}' for the denotify command "
                      f"(reported only once at first occurrence)")
        return
    if mt in ("count", "value"):
        rel = node.tags["match"].items[0]
        if rel.parts is not None or rel.value.lower() not in ("gt", "ge", "lt", "le", "eq", "ne"):
            v.error(node, f'the :{mt} match-type requires a constant string argument being one of '
                          f'"gt", "ge", "lt", "le", "eq" or "ne", but "{rel.value}" was found')
            return
        if not node.pos:
            v.error(node, f"the MATCH-TYPE argument (:{mt}) for the denotify command requires an "
                          f"additional key-string parameter, but no more arguments were found")
            return
    elif node.pos:
        v.error(node, f"the denotify command requires 0 positional argument(s), but {len(node.pos)} "
                      f"is/are specified")
        return
    if mt == "regex":
        key = node.tags["match"].items[0]
        if key.parts is None:
            from sieve.extensions.regex import RegexError, compile_regex
            try:
                compile_regex(key.value, "i;ascii-casemap", v.settings.sieve_max_regex_length,
                              v.settings.sieve_max_regex_memory)
            except RegexError as e:
                v.error(key, f"invalid regular expression '{key.value}' for regex match: {e}")


# --- message variables ---------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(from|env-from|subject|text(?:\[(\d*)\])?)\$", re.IGNORECASE)


def _body_text(rt) -> str:
    """The message's text: its body, decoded; of a multipart message its first text/plain part,
    else its first other text part (HTML as text)."""
    cached = rt.ext.get("notify:text")
    if cached is not None:
        return cached
    other = None
    text = None
    for p in rt.msg.mime_parts(rt.settings.sieve_max_mime_parts, rt.settings.sieve_max_mime_depth):
        rt.step(1 + len(p.body) // 4096)
        if not p.has_body or not p.mtype.startswith("text/"):
            continue
        if p.mtype == "text/plain":
            text = p.text()
            break
        if other is None:
            other = p
    if text is None:
        text = other.readable_text() if other is not None else ""
    text = _first_bytes(text, _TEXT_MAX)
    rt.ext["notify:text"] = text
    return text


def _first_bytes(text: str, n: int) -> str:
    """The first n bytes of text as UTF-8, without a cut character."""
    if len(text) * 4 <= n:
        return text
    return text.encode("utf-8", "surrogateescape")[:n].decode("utf-8", "ignore")


def expand_message(rt, text: str) -> str:
    """`text` with its message variables replaced (unknown $names$ stay as they are)."""
    out: list[str] = []
    size = 0
    pos = 0
    for m in _VARIABLE.finditer(text):
        name = m.group(1).lower()
        if name == "from":
            value = (rt.msg.header_values("from") or [""])[0]
        elif name == "env-from":
            value = rt.envelope.mail_from or ""
        elif name == "subject":
            value = (rt.msg.header_values("subject") or [""])[0]
        else:
            value = _body_text(rt)
            n = m.group(2)
            if n and int(n) > 0:
                value = _first_bytes(value, int(n))
        piece = text[pos:m.start()] + value
        out.append(piece)
        size += len(piece)
        pos = m.end()
        if size > _MESSAGE_MAX:
            break
    else:
        out.append(text[pos:])
    rt.charge_memory(size)
    return "".join(out)[:_MESSAGE_MAX]


# --- notify and denotify ----------------------------------------------------------------------

def _recipients(rt, node) -> list[tuple[str, str]]:
    out = []
    for text in rt.sl(node.tags["options"]) if "options" in node.tags else ():
        got = parse_option(text)
        if isinstance(got, str):
            # (a value a variable built: literal ones were checked while compiling)
            log.warning("sieve: notify: rcpt=<%s> invalid :options address ignored: %s: %s",
                        loggable(rt.envelope.rcpt_to), loggable(text), got)
            continue
        out.append(got)
    return out


def _run_notify(rt, node):
    priority = node.tags.get("priority", "normal")      # draft 3.1: the default is :normal
    nid = rt.s(node.tags["id"]) if "id" in node.tags else None
    text = expand_message(rt, rt.s(node.tags["message"]) if "message" in node.tags else DEFAULT_MESSAGE)
    pending = rt.ext.setdefault(_PENDING, [])
    live = [a for a in rt.result.actions if isinstance(a, Notify)]
    # one notification per recipient per run: those an earlier notify named are left out
    earlier = {address_key(r) for a in live for r in a.recipients}
    wanted: list[tuple[str, str]] = []
    for spec, written in _recipients(rt, node):
        if address_key(spec) not in earlier:
            earlier.add(address_key(spec))
            wanted.append((spec, written))
    per_action = rt.settings.sieve_notify_mailto_max_recipients
    per_run = rt.settings.sieve_notify_mailto_max_run_recipients
    allowed = max(0, min(per_action, per_run - sum(len(a.recipients) for a in live)))
    if len(wanted) > allowed:
        which = ("sieve_notify_mailto_max_recipients" if allowed == per_action
                 else "sieve_notify_mailto_max_run_recipients")
        log.info("sieve: notify: recipients dropped: rcpt=<%s> limit=%s kept=%d dropped=%d to=%s",
                 loggable(rt.envelope.rcpt_to), which, allowed, len(wanted) - allowed,
                 loggable(",".join(f"<{s}>" for s, _ in wanted[allowed:]), 300))
        wanted = wanted[:allowed]
    if not wanted:
        return
    if any(v.strip().lower() != "no" for v in rt.msg.header_raw("auto-submitted")):
        log.info("sieve: notify: rcpt=<%s> not sending notification for auto-submitted message from <%s>",
                 loggable(rt.envelope.rcpt_to), loggable(rt.envelope.mail_from or ""))
        return
    importance = _IMPORTANCE[priority]
    try:
        msg = notify_mailto(rt, to=[w for _, w in wanted], from_addr=rt.settings.sieve_postmaster_address,
                            subject=SUBJECT, body=text, headers=(), importance=importance)
    except HeaderError as e:
        raise SieveRuntimeError(f"notify: cannot compose the notification: {e}") from None
    specs = tuple(s for s, _ in wanted)
    action = Notify(method="mailto:" + ",".join(specs), importance=importance, options=specs, text=text,
                    envelope_from=notify_envelope_from(rt, None), recipients=specs, message=msg,
                    line=node.line)
    rt.add(action, cancels_keep=False)
    pending.append((action, nid, priority))


def _run_denotify(rt, node):
    """Cancel the notifications asked for so far (draft 3.2): those of the priority given, and
    with a match type those whose :id matches the key (i;ascii-casemap); one without :id
    matches no key."""
    pending = rt.ext.get(_PENDING)
    if not pending:
        return
    priority = node.tags.get("priority")
    mt = node.tags.get("match:tag")
    spec = key = None
    if mt is not None:
        rel = None
        if mt in ("count", "value"):
            rel = rt.s(node.tags["match"]).lower()
            key = rt.s(node.pos[0])
        else:
            key = rt.s(node.tags["match"])
        spec = {"cmp": "i;ascii-casemap", "mt": mt, "rel": rel, "regex_cache": None, "no_vars": True}
    from sieve.match import do_match
    keep = []
    for entry in pending:
        action, nid, prio = entry
        hit = priority is None or prio == priority
        if hit and spec is not None:
            hit = do_match(rt, spec, [nid] if nid is not None else [], [key])
        if hit:
            actions = rt.result.actions
            for i, a in enumerate(actions):
                if a is action:
                    del actions[i]
                    rt.result.notifies -= 1
                    break
        else:
            keep.append(entry)
    rt.ext[_PENDING] = keep


_PRIORITY = tuple(TagDef(p, group="priority") for p in ("low", "normal", "high"))
# MATCH-TYPE string: the key is the match type's own parameter (:comparator is not taken, as
# in sievec); :count and :value take their relation, then the key
_MATCH = tuple(TagDef(m, STRING, group="match") for m in ("is", "contains", "matches", "regex", "count", "value"))

EXTENSION = Extension(
    name=NAME,
    commands=(
        CommandDef("notify", tags=(TagDef("method", STRING), TagDef("id", STRING), TagDef("options", STRINGLIST),
                                   TagDef("message", STRING)) + _PRIORITY,
                   validate=_validate_notify, run=_run_notify),
        CommandDef("denotify", tags=_MATCH + _PRIORITY, positional=(STRING,), optional_positional=1,
                   validate=_validate_denotify, run=_run_denotify, arg_names=("key",)),
    ),
    conflicts=("enotify",),
    rfc="draft-martin-sieve-notify-01",
    summary="deprecated: notify (mailto: the :options addresses) and denotify (off by default; use enotify)",
)
