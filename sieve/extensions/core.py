"""Core Sieve language (RFC 5228): control commands, keep/discard/redirect, and the
address, header, exists, size, allof, anyof, not, true, false tests.

Tests: conformance control-*.svtest, test-*.svtest, execute/*.svtest.
"""

from __future__ import annotations

from sieve.actions import Discard, Keep, Redirect
from sieve.address import AddressError, address_part, parse_address_list, parse_path
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef

# Headers that carry addresses (RFC 5228 5.1 says the address test applies to these).
ADDRESS_HEADERS = frozenset("""from sender reply-to to cc bcc resent-from resent-sender resent-to
resent-cc resent-bcc return-receipt-to disposition-notification-to errors-to approved
delivered-to envelope-to x-original-to original-recipient return-path
x-envelope-to x-envelope-from mail-followup-to mail-reply-to list-id""".split())


def _run_require(rt, node):
    return None


def _run_stop(rt, node):
    from sieve.interpreter import StopScript
    raise StopScript()


def keep_flags(rt, node) -> tuple[str, ...]:
    from sieve.extensions.imap4flags import action_flags
    return action_flags(rt, node)


def _run_keep(rt, node):
    rt.add(Keep(mailbox=rt.settings.sieve_default_mailbox, flags=keep_flags(rt, node), line=node.line))


def _run_discard(rt, node):
    rt.add(Discard(line=node.line))


def valid_redirect_address(text: str) -> str | None:
    """The normalised address, or None when it is not a valid mailbox address."""
    try:
        addrs = parse_address_list(text)
    except AddressError:
        return None
    if len(addrs) != 1 or addrs[0].domain is None:
        return None
    a = addrs[0]
    if any(c in a.local for c in " \t") or not a.domain or a.domain.startswith("["):
        if not a.local.startswith('"'):
            pass
    return a.all


def _validate_redirect(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        addr = node.pos[0].items[0].value
        if valid_redirect_address(addr) is None:
            v.error(node.pos[0], f"specified redirect address '{addr}' is invalid")


def _run_redirect(rt, node):
    raw = rt.s(node.pos[0])
    addr = valid_redirect_address(raw)
    if addr is None:
        raise SieveRuntimeError(f"specified redirect address '{raw}' is invalid")
    copy = bool(node.tags.get("copy"))
    rt.add(Redirect(address=addr, copy=copy, envelope_from=rt.envelope.mail_from, line=node.line),
           cancels_keep=not copy)


# --- tests ---------------------------------------------------------------------------

def header_addresses(rt, values_raw: list[str], part: str) -> list[str]:
    """Address parts from raw header values; an unparsable value yields itself for :all
    (so that a garbage header can still be matched), nothing for other parts."""
    out = []
    delims = rt.settings.sieve_recipient_delimiter
    for raw in values_raw:
        try:
            addrs = parse_address_list(raw)
        except AddressError:
            if part == "all":
                out.append(raw)
            elif part == "localpart":
                out.append(raw)
            continue
        for a in addrs:
            p = address_part(a, part, delims)
            if p is not None:
                out.append(p)
        rt.step(1)
    return out


def _validate_address(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        for s in node.pos[0].items:
            name = s.value
            if not name:
                v.error(s, f"specified header field name '{name}' is invalid")


def _valid_header_name(name: str) -> bool:
    return bool(name) and all(33 <= ord(c) <= 126 and c != ":" for c in name)


def _run_address(rt, node):
    from sieve.extensions.index import select_index
    part = node.tags.get("address-part", "all")
    values = []
    for h in rt.sl(node.pos[0]):
        raw = rt.msg.header_raw(h) if "mime" not in node.tags else _mime_headers(rt, node, h)
        raw = select_index(rt, node, raw)
        values.extend(header_addresses(rt, raw, part))
    return rt.match(node, values, rt.sl(node.pos[1]))


def _mime_headers(rt, node, h):
    from sieve.extensions.mime import current_part_headers
    return current_part_headers(rt, node, h, raw=True)


def _validate_header(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        for s in node.pos[0].items:
            if not s.value:
                v.error(s, f"specified header field name '{s.value}' is invalid")


def _run_header(rt, node):
    from sieve.extensions.index import select_index
    values = []
    for h in rt.sl(node.pos[0]):
        if "mime" in node.tags:
            from sieve.extensions.mime import current_part_headers
            vals = current_part_headers(rt, node, h, raw=False)
        else:
            vals = rt.msg.header_values(h)
        values.extend(select_index(rt, node, vals))
    if node.tags.get("match-type") == "count":
        return rt.match(node, values, rt.sl(node.pos[1]))
    return rt.match(node, values, rt.sl(node.pos[1]))


def _run_exists(rt, node):
    for h in rt.sl(node.pos[0]):
        rt.step()
        if "mime" in node.tags:
            from sieve.extensions.mime import current_part_headers
            if not current_part_headers(rt, node, h, raw=True):
                return False
        elif not rt.msg.has_header(h):
            return False
    return True


def _validate_size(v, node):
    if "size" not in node.tags:
        v.error(node, "the size test requires either the :under or the :over tag")


def _run_size(rt, node):
    limit = node.tags["size"].value
    size = rt.msg.size
    if node.tags.get("size:tag") == "over":
        return size > limit
    return size < limit


def _run_allof(rt, node):
    return all(rt.test(t) for t in node.tests)


def _run_anyof(rt, node):
    return any(rt.test(t) for t in node.tests)


def _run_not(rt, node):
    return not rt.test(node.tests[0])


EXTENSION = Extension(
    name="core",
    hidden=True,
    commands=(
        CommandDef("require", positional=(STRINGLIST,), run=_run_require),
        CommandDef("if", block="required", subtests=1),
        CommandDef("elsif", block="required", subtests=1),
        CommandDef("else", block="required"),
        CommandDef("stop", run=_run_stop),
        CommandDef("keep", run=_run_keep),
        CommandDef("discard", run=_run_discard),
        CommandDef("redirect", positional=(STRING,), validate=_validate_redirect, run=_run_redirect),
        CommandDef("address", kind="test", positional=(STRINGLIST, STRINGLIST), match=True,
                   address_part=True, validate=_validate_address, run=_run_address),
        CommandDef("header", kind="test", positional=(STRINGLIST, STRINGLIST), match=True,
                   validate=_validate_header, run=_run_header),
        CommandDef("exists", kind="test", positional=(STRINGLIST,), validate=_validate_header,
                   run=_run_exists),
        CommandDef("size", kind="test", positional=(),
                   tags=(TagDef("over", NUMBER, group="size"), TagDef("under", NUMBER, group="size")),
                   validate=_validate_size, run=_run_size),
        CommandDef("allof", kind="test", subtests="list", run=_run_allof),
        CommandDef("anyof", kind="test", subtests="list", run=_run_anyof),
        CommandDef("not", kind="test", subtests=1, run=_run_not),
        CommandDef("true", kind="test", run=lambda rt, node: True),
        CommandDef("false", kind="test", run=lambda rt, node: False),
    ),
)

__all__ = ["EXTENSION", "header_addresses", "parse_path", "valid_redirect_address"]
