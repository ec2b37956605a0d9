"""Settings that must agree with each other across products, for `owlery config check`.

Each product declares its own settings, so two of them can say different things about one
fact of the site. The recipient delimiter is the one that matters: the directory (policyd's
RCPT check, socketmap) strips an extension with directory_recipient_delimiter, delivery
finds the mailbox with delivery_recipient_delimiter, and Sieve's subaddress test splits
with sieve_recipient_delimiter. If they differ, `alice-lists@` can be accepted at RCPT and
bounced at delivery, or a script's :detail sees another split than delivery did (Dovecot and
Postfix each have one recipient_delimiter). Talks to: nothing.
Tests: tests/core/test_consistency.py
"""

from __future__ import annotations

from typing import Any

DELIMITERS = ("directory_recipient_delimiter", "delivery_recipient_delimiter", "sieve_recipient_delimiter")


def disagreements(settings: Any) -> list[str]:
    """One line per group of settings that disagree, naming each with its value and where it is set."""
    values = {name: getattr(settings, name) for name in DELIMITERS}
    if len({frozenset(v) for v in values.values()}) <= 1:     # each character is a delimiter
        return []
    shown = ", ".join(f"{name} = {value!r} ({_where(settings, name)})" for name, value in values.items())
    return [f"the recipient delimiters differ: {shown}; a recipient with an extension can be accepted "
            "at RCPT and refused at delivery, or split otherwise by Sieve's subaddress test: set all "
            "three to Postfix's recipient_delimiter"]


def _where(settings: Any, name: str) -> str:
    line = settings.line_of(name) if hasattr(settings, "line_of") else None
    return f"{settings.path}:{line}" if line and settings.path else "default"
