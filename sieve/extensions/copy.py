"""copy (RFC 3894): `:copy` on redirect and fileinto keeps the implicit keep alive.

Tests: tests/sieve/svtest/copy.svtest (the corpus has none).
"""

from sieve.extensions.base import Extension, TagDef

EXTENSION = Extension(
    name="copy",
    extra_tags=(("redirect", TagDef("copy")), ("fileinto", TagDef("copy"))),
)
