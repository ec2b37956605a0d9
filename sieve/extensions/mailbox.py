"""mailbox (RFC 5490 3): the mailboxexists test and fileinto :create.

Asks Host.mailbox_exists. Tests: conformance extensions/mailbox/.
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef


def _run(rt, node):
    from sieve.extensions.fileinto import mailbox_name_error
    for name in rt.sl(node.pos[0]):
        rt.step()
        if mailbox_name_error(name) or not rt.host.mailbox_exists(name):
            return False
    return True


EXTENSION = Extension(
    name="mailbox",
    commands=(CommandDef("mailboxexists", kind="test", positional=(STRINGLIST,), run=_run),),
    extra_tags=(("fileinto", TagDef("create")),),
)
