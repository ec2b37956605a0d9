"""relational (RFC 5231): the :count and :value match types (done in sieve.match).

Tests: conformance extensions/relational/.
"""

from sieve.extensions.base import Extension

EXTENSION = Extension(name="relational", match_types=("count", "value"))
