"""editheader (RFC 5293): addheader and deleteheader, editing the message the later tests
and actions see.

Protected fields (RFC 5293 lets an implementation refuse to edit some fields; Pigeonhole
protects Received and Auto-Submitted): the trace fields and the fields redirect loop detection
reads (Received, Auto-Submitted, Delivered-To, X-Sieve-Redirected-From) can be neither added
nor deleted; such an edit is silently ignored. A header value must be valid UTF-8 without
NUL, bare CR, a line break not followed by white space (a folding one is allowed), C1
controls or Unicode line separators: a constant one is a compile error, one built at run time
a runtime error (keep into INBOX). Other C0 controls are obs-NO-WS-CTL (RFC 5322 4.2) and
pass, as Pigeonhole's corpus expects of BELL. Each added field is charged to the run's memory
budget (sieve_max_memory).
Tests: conformance extensions/editheader/; tests/sieve/test_editheader_hostile.py.
"""

from __future__ import annotations

import re

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.message import decode_2047

# Lower-case names; the redirect loop header is sieve.delivery.redirect.REDIRECT_LOOP_HEADER
# (the engine does not import the delivery package).
PROTECTED = frozenset({"received", "auto-submitted", "delivered-to", "x-sieve-redirected-from"})
_NAME = re.compile(r"[!-9;-~]+")
# NUL, CR, C1 controls (NEL among them), LINE/PARAGRAPH SEPARATOR, lone surrogates (the
# bytes of a string that was not UTF-8, kept by surrogateescape).
_BAD_CHAR = re.compile("[\0\r\x80-\x9f\u2028\u2029\ud800-\udfff]")
_BAD_LINE_BREAK = re.compile(r"\r?\n(?![ \t])")


def _name_ok(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def _value_ok(value: str) -> bool:
    """A field body addheader may add: UTF-8, no NUL, no line break but folding (CRLF or LF
    followed by white space), no C1 control or Unicode line separator."""
    return not _BAD_CHAR.search(value.replace("\r\n", "\n")) and not _BAD_LINE_BREAK.search(value)


def _shown(value: str) -> str:
    return value.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\0")


def _validate_add(v, node):
    if len(node.pos) == 2:
        if v.is_literal(node.pos[0]):
            name = node.pos[0].items[0].value
            if not _name_ok(name):
                v.error(node.pos[0], f"specified field name '{name}' is invalid")
        if v.is_literal(node.pos[1]):
            value = node.pos[1].items[0].value
            if not _value_ok(value):
                v.error(node.pos[1], f"specified value '{_shown(value)}' for the addheader command is invalid")
            if len(value) + 2 > v.settings.sieve_max_header_size:
                v.error(node.pos[1], "specified header value is too large")


def _validate_del(v, node):
    if node.tags.get("last") and "index" not in node.tags:
        v.error(node, "the :last tag for the deleteheader command cannot be specified "
                      "without the :index tag")
        return   # the command is malformed; its arguments are not worth checking
    if node.pos and v.is_literal(node.pos[0]):
        name = node.pos[0].items[0].value
        if not _name_ok(name):
            v.error(node.pos[0], f"specified field name '{name}' is invalid")


def _fold(name: str, value: str) -> str:
    # keep line lengths sane; the value is already one logical line
    return " " + value


def _run_add(rt, node):
    name = rt.s(node.pos[0])
    value = rt.s(node.pos[1])
    if not _name_ok(name):
        raise SieveRuntimeError(f"addheader: specified field name '{name}' is invalid")
    if not _value_ok(value):
        raise SieveRuntimeError("addheader: specified value is invalid (not UTF-8, or a control "
                                "character that breaks the header)")
    if name.lower() in PROTECTED:
        return
    if len(name) + len(value) + 2 > rt.settings.sieve_max_header_size:
        raise SieveRuntimeError("addheader: header is too large")
    rt.editheader_count += 1
    rt.step(1)
    if any(ord(c) > 127 for c in value):
        from email.header import Header
        value = Header(value, "utf-8").encode()
    rt.charge_memory(len(name) + len(value) + 2)
    field = [name, _fold(name, value)]
    if node.tags.get("last"):
        rt.msg.headers.append(field)
    else:
        rt.msg.headers.insert(0, field)
    rt.msg.edited = True
    rt.msg.invalidate()


def _run_del(rt, node):
    name = rt.s(node.pos[0])
    if not _name_ok(name):
        raise SieveRuntimeError(f"deleteheader: specified field name '{name}' is invalid")
    if name.lower() in PROTECTED:
        return
    patterns = rt.sl(node.pos[1]) if len(node.pos) == 2 else None
    idxs = [i for i, (k, _) in enumerate(rt.msg.headers) if k.lower() == name.lower()]
    if "index" in node.tags:
        n = node.tags["index"].value
        if n < 1 or n > len(idxs):
            return
        idxs = [idxs[-n] if node.tags.get("last") else idxs[n - 1]]
    doomed = []
    from sieve.message import unfold
    for i in idxs:
        rt.step(1)
        if patterns is not None:
            val = decode_2047(unfold(rt.msg.headers[i][1]).strip(" \t"))
            if not rt.match(node, [val], patterns):
                continue
        doomed.append(i)
    if doomed:
        rt.msg.headers = [h for i, h in enumerate(rt.msg.headers) if i not in set(doomed)]
        rt.msg.edited = True
        rt.msg.invalidate()


EXTENSION = Extension(
    name="editheader",
    commands=(
        CommandDef("addheader", positional=(STRING, STRING), tags=(TagDef("last"),),
                   validate=_validate_add, run=_run_add),
        CommandDef("deleteheader", positional=(STRING, STRINGLIST), optional_positional=1, match=True,
                   tags=(TagDef("index", NUMBER), TagDef("last")), validate=_validate_del, run=_run_del),
    ),
)
