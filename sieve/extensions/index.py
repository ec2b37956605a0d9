"""index (RFC 5260 6): :index N and :last on header, address and date tests.

Tests: conformance extensions/index/, tests/sieve/test_index_last.py.
"""

from __future__ import annotations

from sieve.extensions.base import NUMBER, Extension, TagDef


def select_index(rt, node, values: list) -> list:
    idx = node.tags.get("index")
    if idx is None:
        return values
    n = idx.value
    if n < 1 or n > len(values):
        return []
    return [values[-n]] if node.tags.get("last") else [values[n - 1]]


def validate_index(v, node):
    if node.tags.get("last") and "index" not in node.tags:
        v.error(node, f"the :last tag for the {node.name} test cannot be specified without the :index tag")
    idx = node.tags.get("index")
    if idx is not None and idx.value == 0:
        # fields are counted from 1 (RFC 5260 6): :index 0 names no field, a script error
        # (as sieve-test has it), not a test that is quietly false
        v.error(idx, f"the :index tag for the {node.name} test cannot be zero")


def _last_needs_index(v, node, args) -> bool:
    """:last without :index, or :index 0, reported before the positional arguments are looked
    at, as Pigeonhole does (Extension.early_checks)."""
    from sieve.parser import Num, Tag
    names = {a.name for a in args if isinstance(a, Tag)}
    if "last" in names and "index" not in names:
        v.error(node, f"the :last tag for the {node.name} test cannot be specified without the :index tag")
        return True
    for tag, nxt in zip(args, args[1:], strict=False):
        if isinstance(tag, Tag) and tag.name == "index" and isinstance(nxt, Num) and nxt.value == 0:
            v.error(nxt, f"the :index tag for the {node.name} test cannot be zero")
            return True
    return False


_T = ("header", "address", "date")
EXTENSION = Extension(
    name="index",
    extra_tags=tuple((c, TagDef("index", NUMBER)) for c in _T) + tuple((c, TagDef("last", repeat=True)) for c in _T),
    tag_checks=tuple((c, validate_index) for c in _T),
    early_checks=tuple((c, _last_needs_index) for c in _T),
)
