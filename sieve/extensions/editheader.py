"""editheader (RFC 5293): addheader and deleteheader, editing the message the later tests
and actions see. Received and Auto-Submitted are protected.

Tests: conformance extensions/editheader/.
"""

from __future__ import annotations

import re

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.message import decode_2047

PROTECTED = frozenset({"received", "auto-submitted"})
_NAME = re.compile(r"[!-9;-~]+")


def _name_ok(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def _value_ok(value: str) -> bool:
    return not any(c in value for c in "\0") and not re.search(r"\r?\n(?![ \t])", value)


def _validate_add(v, node):
    if len(node.pos) == 2:
        if v.is_literal(node.pos[0]):
            name = node.pos[0].items[0].value
            if not _name_ok(name):
                v.error(node.pos[0], f"specified field name '{name}' is invalid")
        if v.is_literal(node.pos[1]):
            value = node.pos[1].items[0].value
            if not _value_ok(value):
                shown = value.replace("\0", "\\0")
                v.error(node.pos[1], f"specified value '{shown}' for the addheader command is invalid")
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
        raise SieveRuntimeError("addheader: specified value is invalid")
    if name.lower() in PROTECTED:
        return
    if len(name) + len(value) + 2 > rt.settings.sieve_max_header_size:
        raise SieveRuntimeError("addheader: header is too large")
    rt.editheader_count += 1
    rt.step(1)
    value = value.replace("\r\n", "\r\n\t") if False else value
    if any(ord(c) > 127 for c in value):
        from email.header import Header
        value = Header(value, "utf-8").encode()
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
