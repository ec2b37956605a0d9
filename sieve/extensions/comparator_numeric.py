"""comparator-i;ascii-numeric (RFC 4790 9.1): makes the numeric comparator available.

The comparison itself is in sieve.match. Tests: conformance comparators/, relational/.
"""

from sieve.extensions.base import Extension

EXTENSION = Extension(name="comparator-i;ascii-numeric", comparators=("i;ascii-numeric",))
