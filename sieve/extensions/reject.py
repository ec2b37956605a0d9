"""reject and ereject (RFC 5429): refuse the message with a reason. The engine builds
the rejection message (MDN) so the delivery only has to send it; ereject asks the
delivery to refuse in the SMTP/LMTP dialogue when it still can.

Tests: conformance extensions/reject/; tests/sieve/svtest/ereject.svtest.
"""

from __future__ import annotations

from sieve.actions import Reject
from sieve.extensions.base import STRING, CommandDef, Extension


def _run(rt, node):
    from sieve.outgoing import rejection_message
    reason = rt.s(node.pos[0])
    ereject = node.name == "ereject"
    sender = rt.envelope.mail_from
    mdn = b"" if not sender else rejection_message(rt, reason)
    rt.add(Reject(reason=reason, ereject=ereject, mdn=mdn, mdn_to=sender or "", line=node.line))


EXTENSIONS = (
    Extension(name="reject", commands=(CommandDef("reject", arg_names=("reason",), positional=(STRING,), run=_run),)),
    Extension(name="ereject", commands=(CommandDef("ereject", arg_names=("reason",), positional=(STRING,), run=_run),)),
)
