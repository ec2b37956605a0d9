"""mailbox (RFC 5490 3): the mailboxexists test and fileinto :create.

Asks Host.mailbox_exists. Tests: conformance extensions/mailbox/.
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef


def _validate(v, node):
    # a name that is no UTF-8 names no mailbox: the test is false (RFC 5490 3.1), as sievec
    # warns at compile time
    from sieve.errors import sanitized
    from sieve.extensions.fileinto import mailbox_name_error
    if node.pos and v.is_literal(node.pos[0]):
        for s in node.pos[0].items:
            if s.value and mailbox_name_error(s.value):
                v.warning(s, f"mailboxexists test: invalid mailbox name `{sanitized(s.value)}' specified: invalid utf-8")


def _run(rt, node):
    from sieve.extensions.fileinto import _EMPTY_MEANS, mailbox_name_error
    for name in rt.sl(node.pos[0]):
        rt.step()
        # "" names INBOX, as for fileinto (Pigeonhole: mailboxexists "" is true, fileinto ""
        # stores into INBOX; RFC 5490 3.1 asks whether fileinto could deliver there). A name
        # with NUL (encoded-character) names no mailbox: no store can hold a control character
        # (RFC 3501 5.1, RFC 6855 3); Pigeonhole cuts the C string at the NUL and looks up the
        # part before it ("INBOX${hex:00}x" is true there).
        name = name or _EMPTY_MEANS
        if mailbox_name_error(name) or not rt.host.mailbox_exists(name):
            return False
    return True


def _create_hook(rt, node, action, cancels_keep):
    if node.tags.get("create"):
        return action.replace(create=True), cancels_keep
    return action, cancels_keep


EXTENSION = Extension(
    name="mailbox",
    commands=(CommandDef("mailboxexists", kind="test", positional=(STRINGLIST,), run=_run, validate=_validate,
                         arg_names=("mailbox-names",)),),
    extra_tags=(("fileinto", TagDef("create")),),
    action_hooks=(("fileinto", _create_hook),),
)
