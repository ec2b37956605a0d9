"""Core Sieve language (RFC 5228): control commands, keep/discard/redirect, and the
address, header, exists, size, allof, anyof, not, true, false tests.

Tests: conformance control-*.svtest, test-*.svtest, execute/*.svtest; tests/sieve/test_rfc_fixes.py.
"""

from __future__ import annotations

from owlery.lazyre import lazy
from sieve.actions import Discard, Keep, Redirect
from sieve.address import (AddressError, address_part, only_comments, parse_address_items, parse_address_list,
                           parse_path)
from sieve.errors import SieveRuntimeError, sanitized
from sieve.parser import Num, StrList, Tag
from sieve.extensions.base import (NUMBER, STRING, STRINGLIST, CommandDef, Extension, MatchTypeDef, StopScript,
                                   TagDef)

# RFC 5228 5.1: the address test MUST be restricted to header fields that contain addresses,
# at least From, To, Cc, Bcc, Sender, Resent-From and Resent-To, and SHOULD cover any other
# field whose body is an address list. A literal name outside this list is a compile error.
# RFC 5322 and RFC 8098 (Disposition-Notification-To), RFC 5536 (Approved), then the
# non-standard ones of RFC 2076 and common practice (as Pigeonhole's list, which lacks
# return-path, disposition-notification-to, approved and x-original-from: sievec refuses them;
# tests/sieve/test_real_scripts_fixes.py).
ADDRESS_HEADERS = frozenset("""from sender reply-to to cc bcc resent-from resent-sender resent-to
resent-cc resent-bcc resent-reply-to return-path disposition-notification-to approved
for-approval for-handling for-comment apparently-to errors-to delivered-to return-receipt-to
x-admin read-receipt-to x-confirm-reading-to return-receipt-requested
registered-mail-reply-requested-by mail-followup-to mail-reply-to abuse-reports-to
x-complaints-to x-report-abuse-to x-beenthere x-original-from x-original-to""".split())


def _run_require(rt, node):
    return None


def _run_stop(rt, node):
    raise StopScript()


def _run_keep(rt, node):
    # flags (imap4flags) come from the extension's action hook
    rt.act(node, Keep(mailbox=rt.settings.sieve_default_mailbox, line=node.line))


def _run_discard(rt, node):
    rt.add(Discard(line=node.line))


def valid_redirect_address(text: str) -> str | None:
    """The address as an RFC 5321 path would carry it (a local part that is not a dot-atom
    stays quoted), or None when it is not one valid mailbox address."""
    from sieve.outgoing import HeaderError, addr_spec
    try:
        addrs = parse_address_list(text)
    except AddressError:
        return None
    if len(addrs) != 1 or addrs[0].domain is None:
        return None
    try:
        return addr_spec(addrs[0].local, addrs[0].domain)
    except HeaderError:
        return None


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = lazy(rf'"(?:[^"\\]|\\.)*"|(?:{_ATEXT}|\.)+')       # (dots anywhere, as Pigeonhole reads it)
_DOMAIN = lazy(rf"{_ATEXT}+(?:\.{_ATEXT}+)*(?![.{_ATEXT[1:-1]}])|\[[^\[\]\\]*\]")
_WORD = lazy(rf'"(?:[^"\\]|\\.)*"|{_ATEXT}+|\.')


def _skip_cfws(s: str, i: int) -> int:
    while i < len(s):
        if s[i] in " \t\r\n":
            i += 1
        elif s[i] == "(":
            depth = 0
            while i < len(s):
                depth += (s[i] == "(") - (s[i] == ")")
                i += 1 + (s[i] == "\\")
                if depth == 0:
                    break
        else:
            break
    return i


def address_reason(text: str) -> str | None:
    """Why `text` is not one address, in Pigeonhole's words (its sieve-address parser: "empty
    address", "invalid or lonely local part 'x' (expecting '@')", ...), for the error that
    names an address the checks refused; None when this reading finds nothing wrong."""
    n = len(text)
    i = _skip_cfws(text, 0)
    if i >= n:
        return "empty address"
    j = i
    while True:                                   # a display name: words, then '<'
        m = _WORD.match(text, j)
        if not m:
            break
        j = _skip_cfws(text, m.end())
    angle = j < n and text[j] == "<"
    if angle:
        i = _skip_cfws(text, j + 1)
    m = _LOCAL.match(text, i)
    if not m:
        return "invalid local part"
    i = _skip_cfws(text, m.end())
    if i >= n or text[i] != "@":
        return f"invalid or lonely local part '{m.group()}' (expecting '@')"
    d = _DOMAIN.match(text, _skip_cfws(text, i + 1))
    if not d:
        return "invalid or missing domain"
    i = _skip_cfws(text, d.end())
    if angle:
        if i >= n or text[i] != ">":
            return "missing '>'"
        i = _skip_cfws(text, i + 1)
    if i < n:
        return "not a single address (found ',')" if text[i] == "," else "address ends in invalid characters"
    return None


def address_error(what: str, text: str, shown: str | None = None, purpose: str = "") -> str:
    """"specified <what> 'text' is invalid[ <purpose>][: reason]", as Pigeonhole words it
    (`shown`: the text as the message shows it)."""
    reason = address_reason(text)
    shown = text if shown is None else shown
    return f"specified {what} '{shown}' is invalid{purpose and ' ' + purpose}" + (f": {reason}" if reason else "")


def _validate_redirect(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        addr = node.pos[0].items[0].value
        if valid_redirect_address(addr) is None:
            v.error(node.pos[0], address_error("redirect address", addr))


def _run_redirect(rt, node):
    raw = rt.s(node.pos[0])
    addr = valid_redirect_address(raw)
    if addr is None:
        raise SieveRuntimeError(address_error("redirect address", raw))
    # :copy (copy extension) comes from the extension's action hook
    rt.act(node, Redirect(address=addr, envelope_from=redirect_envelope_from(rt), line=node.line))


def redirect_envelope_from(rt) -> str:
    """MAIL FROM of a redirected copy (setting sieve_redirect_envelope_from, Pigeonhole's address
    source): a message from the null sender is redirected from the null sender whatever the
    setting (RFC 5228 4.2: no loop of bounces); else the original sender, the recipient, the
    original recipient, sieve_user_email (the recipient when unset), the postmaster, or the
    explicit address (kept as written: Pigeonhole lower-cases it, but a local part is
    case-sensitive, RFC 5321 2.4)."""
    env = rt.envelope
    if not env.mail_from:
        return ""
    source = rt.settings.sieve_redirect_envelope_from
    if source == "recipient":
        return env.rcpt_to or env.mail_from
    if source == "orig_recipient":
        return env.orig_rcpt or env.rcpt_to or env.mail_from
    if source == "user_email":
        return _path_of(rt.settings.sieve_user_email) or env.rcpt_to or env.mail_from
    if source == "postmaster":
        return _path_of(rt.settings.sieve_postmaster_address) or env.mail_from
    if source.startswith("<"):
        return source[1:-1].strip()
    return env.mail_from


def _path_of(value: str | None) -> str:
    """The bare address of a configured address ("a@b", "<a@b>" or "Name <a@b>"); "" if none."""
    if not value:
        return ""
    try:
        found = parse_address_list(value)
    except AddressError:
        return ""
    return found[0].all if len(found) == 1 and found[0].domain is not None else ""


# --- tests ---------------------------------------------------------------------------

def header_addresses(rt, values_raw: list[str], part: str) -> list[str]:
    """Address parts from raw header values: those of the field's valid addresses (invalid
    items are skipped). A field with no valid address (garbage, empty, an empty group) yields
    its text for :all only: RFC 5228
    2.7.4, an address that is not valid is never matched by :localpart or :domain (nor by
    :user or :detail)."""
    return list(_address_values(rt, values_raw, part))


def _address_values(rt, values_raw, part: str):
    """header_addresses one at a time, each field parsed when the match comes to it (the
    address test holds one field's addresses, not every address of the header)."""
    delims = rt.settings.sieve_recipient_delimiter
    for raw in values_raw:
        rt.step(1)
        addrs, _valid = parse_address_items(raw)
        if not addrs:
            # garbage, an empty field or an empty group: :all sees the field's text; a field
            # of comments only holds no entry at all
            if part == "all" and not only_comments(raw):
                yield raw
            continue
        for a in addrs:
            p = address_part(a, part, delims)
            if p is not None:
                yield p


def _counted(node, values):
    """`values` as the match reads them: for :count (RFC 5231 4.2), which reads how many there
    are and nothing else, one shared empty string each instead of their texts."""
    if node.tags.get("match-type") == "count":
        return ("" for _ in values)
    return values


def warn_header_names(v, names):
    """The first header name of the string list `names` that is not one (RFC 5322 3.6.8
    field-name): a warning only, as sievec gives (RFC 5228 5.7: such a name matches nothing,
    never an error)."""
    if v.is_literal(names):
        for s in names.items:
            if s.value and not _valid_header_name(s.value):
                v.warning(s, f"specified header field name '{sanitized(s.value)}' is invalid")
                return


# the address test's tags that take no parameter: with only these, its last two arguments are
# the positionals
_NO_PARAMETER = frozenset(("all", "localpart", "domain", "user", "detail", "is", "contains", "matches", "regex",
                           "mime", "anychild", "last"))


def last_two_positionals(node, args):
    """(list, wrong) when `args` are parameterless tags then a string list and an argument of
    another type (an address-like test whose key list is wrong), else None."""
    if len(args) < 2 or node.tests or not all(isinstance(a, Tag) and a.name in _NO_PARAMETER for a in args[:-2]):
        return None
    pos = args[-2:]
    return pos if isinstance(pos[0], StrList) and not isinstance(pos[1], StrList) else None


def _address_first(v, node, args) -> bool:
    """The header list before the key list's type, as Pigeonhole checks them
    (CommandDef.arguments_first); True when it reported an error."""
    pos = last_two_positionals(node, args)
    if pos is None:
        return False
    before = v.errors
    _check_address_headers(v, pos[0])
    return v.errors != before


def _validate_address(v, node):
    if node.pos:
        _check_address_headers(v, node.pos[0])


def _check_address_headers(v, names):
    # the first header that is not an address header is reported, not the ones after it
    # (as Pigeonhole does: one error per test)
    warn_header_names(v, names)
    if v.is_literal(names):
        for s in names.items:
            name = s.value
            if name.lower() not in ADDRESS_HEADERS:
                v.error(s, f"specified header '{name}' is not allowed for the address test")
                return


def _valid_header_name(name: str) -> bool:
    return bool(name) and all(33 <= ord(c) <= 126 and c != ":" for c in name)


def _run_address(rt, node):
    part = node.tags.get("address-part", "all")
    if node.tags.get("match-type") == "count":
        part = "all"      # RFC 5231 4.1: :count counts addresses, whatever the address part
    fields = []
    for h in rt.sl(node.pos[0]):
        fields.extend(rt.msg.header_raw(h) if "mime" not in node.tags else _mime_headers(rt, node, h))
    if "index" in node.tags:
        # :index counts the fields of all the names given, in that order (as Pigeonhole)
        from sieve.extensions.index import select_index
        fields = select_index(rt, node, fields)
    keys = rt.sl(node.pos[1])
    return rt.match(node, _counted(node, _address_values(rt, fields, part)), keys)


def _mime_headers(rt, node, h):
    from sieve.extensions.mime import current_part_headers
    return current_part_headers(rt, node, h, raw=True)


def _validate_header(v, node):
    # "no header will match a syntactically invalid header name. An implementation MUST NOT
    # cause an error for syntactically invalid header names in tests" (RFC 5228 5.7): the
    # empty name too; such a name matches no field (sieve.message.Message.header_raw)
    if node.pos:
        warn_header_names(v, node.pos[0])


def _run_header(rt, node):
    names = rt.sl(node.pos[0])
    keys = rt.sl(node.pos[1])
    if "mime" in node.tags or "index" in node.tags:
        values = []
        for h in names:
            if "mime" in node.tags:
                from sieve.extensions.mime import current_part_headers
                values.extend(current_part_headers(rt, node, h, raw=False))
            else:
                values.extend(rt.msg.header_values(h))
        if "index" in node.tags:
            # :index counts the fields of all the names given, in that order (as Pigeonhole)
            from sieve.extensions.index import select_index
            values = select_index(rt, node, values)
        return rt.match(node, values, keys)
    if node.tags.get("match-type") == "count":
        # :count reads how many values there are, one a field: none is decoded
        return rt.match(node, [""] * sum(rt.msg.field_count(h) for h in names), keys)
    # each field decoded when the match comes to it: one decoded copy at a time
    values = (v for h in names for v in rt.msg.iter_header_values(h))
    return rt.match(node, values, keys)


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


def _size_arguments_first(v, node, args) -> bool:
    """Reports Pigeonhole's error for size's arguments (True), if any (Validator.bind's
    arguments_first)."""
    found = _size_arguments_error(args)
    if found is not None:
        v.error(found[0] or node, found[1])
    return found is not None


def _size_arguments_error(args):
    """Pigeonhole's error for size's arguments, or None. It reads `:over 100` as a tag and a
    positional limit (tst-size); Owlery binds the limit to the tag (RFC 5228 5.9 has the same
    grammar): same verdicts, Pigeonhole's checks in Pigeonhole's order for the words."""
    i = 0
    while i < len(args) and isinstance(args[i], Tag):
        if i:
            return args[i], "exactly one of the ':under' or ':over' tags must be specified for the size test, " \
                            "but more were found"
        i += 1
    pos = args[i:]
    for a in pos:
        if isinstance(a, Tag):
            return a, _SIZE_TWICE.format(tag=a.name, cmd="size", what="test")
    if len(pos) != 1:
        return None, f"the size test requires 1 positional argument(s), but {len(pos)} is/are specified"
    if not i:
        return None, "the size test requires either the :under or the :over tag to be specified"
    if not isinstance(pos[0], Num):
        found = "a string list" if pos[0].bracketed or len(pos[0].items) != 1 else "a string"
        return pos[0], f"the size test expects a number as argument 1 (limit), but {found} was found"
    return None


def _validate_size(v, node):
    if "size" not in node.tags:
        v.error(node, "the size test requires either the :under or the :over tag to be specified")


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


# Pigeonhole reads size's limit as a positional argument after the tag: a second tag there is
# "unexpected" (Owlery binds the limit to the tag, RFC 5228 5.9; see validator._size_param_error)
_SIZE_TWICE = ("encountered an unexpected tagged argument ':{tag}' while validating positional arguments "
               "for the {cmd} {what}")

EXTENSION = Extension(
    name="core",
    hidden=True,
    match_types=(MatchTypeDef("is"), MatchTypeDef("contains"), MatchTypeDef("matches")),
    address_parts=("all", "localpart", "domain"),
    comparators=("i;octet", "i;ascii-casemap"),
    commands=(
        CommandDef("require", positional=(STRINGLIST,), run=_run_require),
        CommandDef("if", block="required", subtests=1),
        CommandDef("elsif", block="required", subtests=1),
        CommandDef("else", block="required"),
        CommandDef("stop", run=_run_stop),
        CommandDef("keep", run=_run_keep),
        CommandDef("discard", run=_run_discard),
        CommandDef("redirect", positional=(STRING,), validate=_validate_redirect, run=_run_redirect,
                   arg_names=("address",)),
        CommandDef("address", kind="test", positional=(STRINGLIST, STRINGLIST), match=True,
                   address_part=True, validate=_validate_address, run=_run_address,
                   arg_names=("header list", "key list"), arguments_first=_address_first),
        CommandDef("header", kind="test", positional=(STRINGLIST, STRINGLIST), match=True,
                   validate=_validate_header, run=_run_header, arg_names=("header names", "key list")),
        CommandDef("exists", kind="test", positional=(STRINGLIST,), validate=_validate_header,
                   run=_run_exists, arg_names=("header names",)),
        CommandDef("size", kind="test", positional=(), arg_names=("limit",),
                   tags=(TagDef("over", NUMBER, group="size", conflict=_SIZE_TWICE),
                         TagDef("under", NUMBER, group="size", conflict=_SIZE_TWICE)),
                   validate=_validate_size, run=_run_size, arguments_first=_size_arguments_first),
        CommandDef("allof", kind="test", subtests="list", run=_run_allof),
        CommandDef("anyof", kind="test", subtests="list", run=_run_anyof),
        CommandDef("not", kind="test", subtests=1, run=_run_not),
        CommandDef("true", kind="test", run=lambda rt, node: True),
        CommandDef("false", kind="test", run=lambda rt, node: False),
    ),
)

__all__ = ["EXTENSION", "address_error", "address_reason", "header_addresses", "last_two_positionals", "parse_path",
           "valid_redirect_address", "warn_header_names"]
