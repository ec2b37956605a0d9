"""comparator-i;unicode-casemap (RFC 5051): makes the Unicode case-insensitive comparator
available (`require "comparator-i;unicode-casemap"`), for :is, :contains, :matches and the
relational :value/:count; not for :regex (a compile error, as for i;ascii-numeric).

The comparison itself (simple titlecase, then NFKD) is sieve.match.unicode_fold.
Tests: tests/sieve/svtest/unicode-casemap.svtest, tests/sieve/test_new_extensions.py.
"""

from sieve.extensions.base import Extension

EXTENSION = Extension(name="comparator-i;unicode-casemap", comparators=("i;unicode-casemap",))
