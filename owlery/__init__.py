"""Owlery: mail filtering for stock Postfix (shared core)."""

__version__ = "0.1.0"
