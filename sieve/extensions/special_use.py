"""special-use (RFC 8579): fileinto :specialuse and the specialuse_exists test.

Asks Host.special_use_exists. Tests: conformance extensions/special-use/,
tests/sieve/test_differential_fixes_s13.py, tests/sieve/test_pigeonhole_probes_s18b.py.
"""

from __future__ import annotations

from owlery.lazyre import lazy
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef

# RFC 6154 2: use-attr-ext = a backslash and an atom; RFC 3501 9: an atom is one or more
# ATOM-CHARs, any CHAR but the atom-specials ( ) { SP CTL % * " backslash ] (so \1, \a.b and
# \a[ are flags, as Pigeonhole has them; a lone backslash is none)
_FLAG = lazy(r'\\[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+')


def _validate_exists(v, node):
    # specialuse_exists [<mailbox: string>] <special-use-attrs: string-list> (RFC 8579 5): the
    # optional argument is the first one, so a lone argument is the flag list, ["\\Junk"] too;
    # with two, the first is the mailbox and must be a string
    if len(node.pos) == 2 and (len(node.pos[0].items) != 1 or node.pos[0].bracketed):
        v.error(node.pos[0], "if a second argument is specified for the specialuse_exists test, the first must "
                             "be a string (mailbox), but a string list was found")
        return
    if node.pos and v.is_literal(node.pos[-1]):
        for s in node.pos[-1].items:
            if not _FLAG.fullmatch(s.value):
                v.error(s, f"{node.name} test: invalid special-use flag `{s.value}' specified")


def _run_exists(rt, node):
    mailbox = rt.s(node.pos[0]) if len(node.pos) == 2 else None
    if mailbox is not None:
        from sieve.extensions.fileinto import mailbox_name_error
        if mailbox_name_error(mailbox) or not rt.host.mailbox_exists(mailbox):
            return False
    for flag in rt.sl(node.pos[-1]):
        if not _FLAG.fullmatch(flag):
            # built at run time (a constant is a compile error): a runtime error, as for
            # fileinto :specialuse and in Pigeonhole, not a flag no mailbox has; the flags are
            # looked at in turn, so one after a flag that is not there is not reached
            raise SieveRuntimeError(f"specialuse_exists test: invalid special-use flag `{flag}' specified")
        if not rt.host.special_use_exists(mailbox, flag):
            return False
    return True


def _specialuse_first(v, node, args) -> bool:
    """A constant :specialuse flag that is none, reported as the tag is read (before a repeated
    tag or the positional count), as Pigeonhole does (Extension.early_checks)."""
    from sieve.parser import StrList, Tag
    for tag, nxt in zip(args, args[1:], strict=False):
        if isinstance(tag, Tag) and tag.name == "specialuse" and isinstance(nxt, StrList) \
                and len(nxt.items) == 1 and not nxt.bracketed and "${" not in nxt.items[0].value \
                and not _FLAG.fullmatch(nxt.items[0].value):
            v.error(nxt, f"specialuse tag: invalid special-use flag `{nxt.items[0].value}' specified")
            return True
    return False


def _check_specialuse(v, node):
    """fileinto :specialuse takes one special-use attribute (RFC 8579 4, RFC 6154 use-attr:
    "\\" and an atom): a constant that is none is a compile error."""
    su = node.tags.get("specialuse")
    if su is not None and v.is_literal(su) and not _FLAG.fullmatch(su.items[0].value):
        v.error(su, f"specialuse tag: invalid special-use flag `{su.items[0].value}' specified")


def _specialuse_hook(rt, node, action, cancels_keep):
    su = node.tags.get("specialuse")
    if su is not None:
        flag = rt.s(su)
        if not _FLAG.fullmatch(flag):
            # built at run time: an error, so the implicit keep stores into INBOX (RFC 8579 4)
            raise SieveRuntimeError(f"specialuse tag: invalid special-use flag `{flag}' specified")
        return action.replace(special_use=flag), cancels_keep
    return action, cancels_keep


EXTENSION = Extension(
    name="special-use",
    commands=(CommandDef("specialuse_exists", kind="test", positional=(STRINGLIST, STRINGLIST),
                         optional_positional=1, validate=_validate_exists, run=_run_exists,
                         arg_names=("mailbox", "special-use flags"), leading_optional=True),),
    extra_tags=(("fileinto", TagDef("specialuse", STRING)),),
    tag_checks=(("fileinto", _check_specialuse),),
    early_checks=(("fileinto", _specialuse_first),),
    action_hooks=(("fileinto", _specialuse_hook),),
)
