"""special-use (RFC 8579): fileinto :specialuse and the specialuse_exists test.

Asks Host.special_use_exists. Tests: conformance extensions/special-use/.
"""

from __future__ import annotations

import re

from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef

_FLAG = re.compile(r"\\[A-Za-z][A-Za-z0-9_-]*")


def _validate_exists(v, node):
    if node.pos and v.is_literal(node.pos[-1]):
        for s in node.pos[-1].items:
            if not _FLAG.fullmatch(s.value):
                v.error(s, f"invalid special-use flag '{s.value}'")


def _validate_fileinto_flag(v, node):
    pass


def _run_exists(rt, node):
    mailbox = rt.s(node.pos[0]) if len(node.pos) == 2 else None
    if mailbox is not None:
        from sieve.extensions.fileinto import mailbox_name_error
        if mailbox_name_error(mailbox) or not rt.host.mailbox_exists(mailbox):
            return False
    for flag in rt.sl(node.pos[-1]):
        if not _FLAG.fullmatch(flag):
            return False
        if not rt.host.special_use_exists(mailbox, flag):
            return False
    return True


EXTENSION = Extension(
    name="special-use",
    commands=(CommandDef("specialuse_exists", kind="test", positional=(STRING, STRINGLIST),
                         optional_positional=1, validate=_validate_exists, run=_run_exists),),
    extra_tags=(("fileinto", TagDef("specialuse", STRING)),),
)
