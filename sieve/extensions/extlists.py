"""extlists (RFC 6134): the :list match type (answered by Host.list_contains) and the
valid_ext_list test.

Tests: conformance extensions/extlists/.
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension


def _run_valid(rt, node):
    return all(rt.host.list_contains(n, "") is not None for n in rt.sl(node.pos[0]))


EXTENSION = Extension(
    name="extlists",
    match_types=("list",),
    commands=(CommandDef("valid_ext_list", kind="test", positional=(STRINGLIST,), run=_run_valid),),
)
