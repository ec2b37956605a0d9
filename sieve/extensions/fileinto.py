"""fileinto (RFC 5228 4.1): store into a named mailbox. :copy, :flags, :create and
:specialuse come from the copy, imap4flags, mailbox and special-use extensions.

Tests: conformance execute/actions, errors; extensions/mailbox, special-use.
"""

from __future__ import annotations

from sieve.actions import FileInto
from sieve.errors import SieveRuntimeError, sanitized
from sieve.extensions.base import STRING, CommandDef, Extension


def mailbox_name_error(name: str) -> str | None:
    """Why a script may not name `name` as a mailbox at all, or None.

    Only what no mail store could take: text that is not UTF-8 (RFC 5228 2.7.2 / RFC 5198;
    Pigeonhole checks the same at compile time) and the empty name (which fileinto itself
    takes for INBOX, as Pigeonhole does). Names a store refuses (empty hierarchy levels, control characters) compile
    and run; storing them fails when the result is executed (store_name_error), as in
    Pigeonhole, and the message is kept instead."""
    if name == "":
        return "mailbox name is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "mailbox name is not valid UTF-8"
    return None


def store_name_error(name: str) -> str | None:
    """Why the mail store refuses `name` (owlery.maildir: '.' and '/' separate hierarchy
    levels, RFC 3501 5.1; no empty level, no control characters), or None."""
    err = mailbox_name_error(name)
    if err:
        return err
    from owlery.maildir import MaildirError, folder_dirname
    try:
        folder_dirname(name)
    except MaildirError:
        if name == "":
            return "mailbox name is empty"
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in name):
            return "mailbox name contains control characters"
        return "invalid mailbox name (empty hierarchy level, a name starting with '~', or too long)"
    return None


# fileinto "" stores into INBOX in Pigeonhole (its log: "stored mail into mailbox '' (INBOX)"),
# flags and all; RFC 5228 4.1 says nothing of an empty name. Other tests still find no such box.
_EMPTY_MEANS = "INBOX"


def _validate(v, node):
    if node.pos and v.is_literal(node.pos[0]):
        name = node.pos[0].items[0].value
        if name == "":
            v.warning(node.pos[0], f"empty folder name for fileinto: the message is stored in {_EMPTY_MEANS}")
            return
        err = mailbox_name_error(name)
        if err:
            v.error(node.pos[0], f"fileinto command: invalid folder name `{sanitized(name)}' specified: "
                                 f"{_PIGEONHOLE_REASON.get(err, err)}")
        elif store_name_error(name):
            # compiles (as in Pigeonhole), but say now what delivery will say
            v.warning(node.pos[0], f"folder name '{_safe(name)}' will be refused by the mail store: "
                                   f"{store_name_error(name)}; such messages are kept in INBOX")


# mailbox_name_error's reasons as Pigeonhole words them
_PIGEONHOLE_REASON = {"mailbox name is not valid UTF-8": "invalid utf-8"}


def _safe(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode("utf-8", "replace")


def _run(rt, node):
    name = rt.s(node.pos[0]) or _EMPTY_MEANS
    err = mailbox_name_error(name)
    if err:
        # (sieve-test's words; at run time it shows an octet that is no UTF-8 as U+FFFD)
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise SieveRuntimeError(f"fileinto command: invalid folder name `{shown}' specified: "
                                f"{_PIGEONHOLE_REASON.get(err, err)}")
    # :flags, :copy, :create and :specialuse are filled in by those extensions' action hooks
    rt.act(node, FileInto(mailbox=name, line=node.line))


EXTENSION = Extension(
    name="fileinto",
    commands=(CommandDef("fileinto", positional=(STRING,), validate=_validate, run=_run,
                         arg_names=("folder",)),),
)
