"""ihave (RFC 5463): the ihave test (capabilities known here are loaded for the rest of
the script) and the error command.

Tests: conformance extensions/ihave/, tests/sieve/test_rfc_fixes.py.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension


# Extensions that change how every string of the script is read (RFC 5228 2.4.2.4 encoded
# characters, RFC 5229 variable expansion) take effect for the whole script at `require`;
# ihave cannot switch them on for one block, so it answers false for them (as Pigeonhole).
NOT_THROUGH_IHAVE = frozenset({"encoded-character", "variables"})


def _validate_ihave(v, node):
    if not node.pos:
        return
    if not v.is_literal(node.pos[0]):
        v.error(node, "the ihave test requires a constant string list")
        return
    ok = True
    loaded = v.data.setdefault("ihave_loaded", set())
    for s in node.pos[0].items:
        if s.value in NOT_THROUGH_IHAVE or not v.known(s.value):
            ok = False
        else:
            if s.value not in v.required:
                loaded.add(s.value)
            v._load(s.value)
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
