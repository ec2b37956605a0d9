"""Settings that must agree with each other across products, for `owlery config check`.

Each product declares its own settings, so two of them can say different things about one
fact of the site. The recipient delimiter is the one that matters: the directory (policyd's
RCPT check, socketmap) strips an extension with directory_recipient_delimiter, delivery
finds the mailbox with delivery_recipient_delimiter, and Sieve's subaddress test splits
with sieve_recipient_delimiter. If they differ, `alice-lists@` can be accepted at RCPT and
bounced at delivery, or a script's :detail sees another split than delivery did (Dovecot and
Postfix each have one recipient_delimiter). The Sieve scripts' place is the other: moving
the Maildirs (maildir_path_template) leaves delivery_sieve_script_template, and so ManageSieve's
uploads and delivery's reads, under the default /var/lib/owlery/mail. Talks to: nothing.
Tests: tests/core/test_consistency.py, tests/core/test_newcomer_s21.py (the Sieve scripts' place)
"""

from __future__ import annotations

from typing import Any

DELIMITERS = ("directory_recipient_delimiter", "delivery_recipient_delimiter", "sieve_recipient_delimiter")


def disagreements(settings: Any) -> list[str]:
    """One line per group of settings that disagree, naming each with its value and where it is set."""
    return _delimiters_differ(settings) + _sieve_scripts_left_behind(settings)


def _delimiters_differ(settings: Any) -> list[str]:
    values = {name: getattr(settings, name) for name in DELIMITERS}
    if len({frozenset(v) for v in values.values()}) <= 1:     # each character is a delimiter
        return []
    shown = ", ".join(f"{name} = {value!r} ({_where(settings, name)})" for name, value in values.items())
    return [f"the recipient delimiters differ: {shown}; a recipient with an extension can be accepted "
            "at RCPT and refused at delivery, or split otherwise by Sieve's subaddress test: set all "
            "three to Postfix's recipient_delimiter"]


def _sieve_scripts_left_behind(settings: Any) -> list[str]:
    """The Maildirs moved in the file, the Sieve scripts left at the default place (the passwd
    directory has templates of its own, under each account's home)."""
    if settings.directory_backend == "passwd":
        return []
    if not _set_in_file(settings, "maildir_path_template") or _set_in_file(settings, "delivery_sieve_script_template"):
        return []
    mail, script = settings.maildir_path_template, settings.delivery_sieve_script_template
    if _fixed_part(mail) == _fixed_part(script):
        return []
    home = mail.removesuffix("Maildir") if mail.endswith("/Maildir") else _fixed_part(mail)
    return [f"maildir_path_template = {mail!r} ({_where(settings, 'maildir_path_template')}) moves the "
            f"Maildirs, but delivery_sieve_script_template is at its default, {script!r}: ManageSieve "
            "stores the users' scripts there and delivery reads them there; set "
            f"delivery_sieve_script_template = \"{home}sieve/active.sieve\" beside them"]


def _set_in_file(settings: Any, name: str) -> bool:
    return bool(settings.line_of(name)) if hasattr(settings, "line_of") else False


def _fixed_part(template: str) -> str:
    """The directory a path template names before its first field."""
    return template.split("{", 1)[0].rsplit("/", 1)[0]


def _where(settings: Any, name: str) -> str:
    line = settings.line_of(name) if hasattr(settings, "line_of") else None
    return f"{settings.path}:{line}" if line and settings.path else "default"
