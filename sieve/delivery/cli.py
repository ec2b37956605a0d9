"""Subcommands of `owlery` for this product (registered by owlery.cli)."""


def register(sub):
    """Add this product's subcommands to the `owlery` parser."""
