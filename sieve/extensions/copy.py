"""copy (RFC 3894): `:copy` on redirect and fileinto keeps the implicit keep alive.

Tests: tests/sieve/svtest/copy.svtest (the corpus has none).
"""

from sieve.extensions.base import Extension, TagDef


def _copy_hook(rt, node, action, cancels_keep):
    # :copy stores or sends a copy: the implicit keep stays
    if node.tags.get("copy"):
        return action.replace(copy=True), False
    return action, cancels_keep


EXTENSION = Extension(
    name="copy",
    extra_tags=(("redirect", TagDef("copy")), ("fileinto", TagDef("copy"))),
    action_hooks=(("redirect", _copy_hook), ("fileinto", _copy_hook)),
)
