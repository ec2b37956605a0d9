"""fileinto (RFC 5228 4.1): store into a named mailbox. :copy, :flags, :create and
:specialuse come from the copy, imap4flags, mailbox and special-use extensions.

Tests: conformance execute/actions, errors; extensions/mailbox, special-use.
"""

from __future__ import annotations

from sieve.actions import FileInto
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, CommandDef, Extension


def mailbox_name_error(name: str) -> str | None:
    """Why `name` is not a usable mailbox name, or None when it is fine."""
    if name == "":
        return "mailbox name is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "mailbox name is not valid UTF-8"
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        return "mailbox name contains control characters"
    if len(name) > 255:
        return "mailbox name is too long"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "mailbox name has an empty hierarchy level"
    return None


def _validate(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        name = node.pos[0].items[0].value
        err = mailbox_name_error(name)
        if err:
            v.error(node.pos[0], f"invalid folder name '{_safe(name)}' specified for fileinto command: {err}")


def _safe(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode("utf-8", "replace")


def _run(rt, node):
    from sieve.extensions.imap4flags import action_flags
    name = rt.s(node.pos[0])
    err = mailbox_name_error(name)
    if err:
        raise SieveRuntimeError(f"fileinto: invalid folder name '{_safe(name)}': {err}")
    copy = bool(node.tags.get("copy"))
    su = node.tags.get("specialuse")
    rt.add(FileInto(mailbox=name, flags=action_flags(rt, node), create=bool(node.tags.get("create")),
                    copy=copy, special_use=rt.s(su) if su is not None else None, line=node.line),
           cancels_keep=not copy)


EXTENSION = Extension(
    name="fileinto",
    commands=(CommandDef("fileinto", positional=(STRING,), validate=_validate, run=_run),),
)
