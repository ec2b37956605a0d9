"""ihave (RFC 5463): the ihave test (capabilities known here are loaded for the rest of
the script) and the error command.

Tests: conformance extensions/ihave/.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension


def _validate_ihave(v, node):
    if not node.pos:
        return
    if not v.is_literal(node.pos[0]):
        v.error(node, "the ihave test requires a constant string list")
        return
    ok = True
    for s in node.pos[0].items:
        if v.known(s.value):
            v._load(s.value)
        else:
            ok = False
    node.data["known"] = ok


def _run_ihave(rt, node):
    return node.data.get("known", False)


def _run_error(rt, node):
    raise SieveRuntimeError(rt.s(node.pos[0]))


EXTENSION = Extension(
    name="ihave",
    commands=(
        CommandDef("ihave", kind="test", positional=(STRINGLIST,), validate=_validate_ihave, run=_run_ihave),
        CommandDef("error", positional=(STRING,), run=_run_error),
    ),
)
