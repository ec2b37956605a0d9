"""regex (draft-ietf-sieve-regex): the :regex match type (POSIX ERE, see sieve.match for
how hostile patterns are bounded) and the :quoteregex modifier of `set`.

Tests: conformance extensions/regex/; tests/sieve/test_hostile.py (regex bombs).
"""

from __future__ import annotations

from sieve.extensions.base import Extension, TagDef

EXTENSION = Extension(
    name="regex",
    match_types=("regex",),
    extra_tags=(("set", TagDef("quoteregex", key="mod:quoteregex")),),
)
