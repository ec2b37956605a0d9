"""Mailbox expiry rules: which messages of which folder are old enough to go (pure, no I/O).

A message's age is taken from its delivery time, the seconds at the start of its Maildir
file name (`1733400000.M1P2Q3R4.host,S=...`), never from the file's mtime: IMAP clients
and Dovecot change mtimes (flag updates rename the file, some tools touch it), and the
name is what Dovecot itself uses for the received date when the index is gone. A name
that is not Maildir-shaped (no leading ASCII digits) is never expired, only counted.

Folders are matched by their IMAP name, case-insensitively, on the whole name
("Archive/Junk" and "Archive.Junk" are the same folder), or by special use: a key
`\\Junk` matches the folder names mail clients use for that role (Junk, Spam, ...;
the table below), since the special-use flags themselves live in Dovecot's config,
not in the Maildir. The most specific rule wins: a folder named in full beats a
special-use rule.
Used by: sieve/delivery/mailbox_cli.py (`owlery mailbox expire`), with
owlery.maildir.Maildir.expunge doing the file work.
Tests: tests/delivery/test_mailbox_expire.py
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlery.maildir import delivery_time
from owlery.settings import Duration, SettingType, parse_duration, setting

# RFC 6154 roles and the names clients (Thunderbird, Outlook, Apple Mail, Roundcube, K-9)
# create for them; matched case-insensitively against the whole folder name.
SPECIAL_USE_NAMES: dict[str, tuple[str, ...]] = {
    "\\junk": ("junk", "spam", "junk e-mail", "junk email", "bulk mail", "junk mail"),
    "\\trash": ("trash", "deleted items", "deleted messages", "bin"),
    "\\sent": ("sent", "sent items", "sent messages", "sent mail"),
    "\\drafts": ("drafts",),
    "\\archive": ("archive", "archives"),
}


def _parse_ages(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a table of folder = age, e.g. { Junk = \"30d\", \"\\\\Trash\" = \"30d\" }")
    ages: dict[str, float] = {}
    for folder, age in value.items():
        key = str(folder).strip()
        if not key:
            raise ValueError("empty folder name")
        if key.startswith("\\") and key.lower() not in SPECIAL_USE_NAMES:
            raise ValueError(f"{key}: unknown special use (one of {', '.join(sorted(SPECIAL_USE_NAMES))})")
        try:
            seconds = parse_duration(age)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
        if seconds <= 0:
            raise ValueError(f"{key}: the age must be positive")
        ages[_folder_key(key)] = seconds
    return ages


FolderAges = SettingType("table of folder = duration", _parse_ages,
                         lambda v: {k: f"{int(s)}s" for k, s in v.items()})

MAILBOX_EXPIRE_AGES = setting(
    "mailbox_expire_ages", FolderAges, {},
    "How old a message may get in a folder before `owlery mailbox expire` removes it, by "
    "delivery time: { Junk = \"30d\", Trash = \"30d\", SPAM = \"10d\" }. Keys are IMAP folder names "
    "(any case; \"INBOX\" included) or special uses (\"\\\\Junk\", \"\\\\Trash\", \"\\\\Sent\", "
    "\"\\\\Drafts\", \"\\\\Archive\") matching the usual client names for them. Empty: nothing expires.")
MAILBOX_EXPIRE_TMP_AGE = setting(
    "mailbox_expire_tmp_age", Duration, "36h", unit="s",
    doc="Files in a Maildir's tmp/ older than this are leftovers of interrupted deliveries and are "
        "removed by `owlery mailbox expire` (Maildir's rule of thumb, as Dovecot does).")

def _folder_key(name: str) -> str:
    return name.replace("/", ".").lower()


def age_limit(folder: str, ages: Mapping[str, float]) -> float | None:
    """The maximum age for a folder (IMAP name) under these rules, None when it never expires."""
    key = _folder_key(folder)
    if key in ages:
        return ages[key]
    for role, names in SPECIAL_USE_NAMES.items():
        if role in ages and key in names:
            return ages[role]
    return None


class ExpiryRules:
    """select(folder, filename) for Maildir.expunge; counts the names it could not date."""

    def __init__(self, ages: Mapping[str, float], now: float):
        self.ages = dict(ages)
        self.now = now
        self.undated = 0

    def select(self, folder: str, filename: str) -> bool:
        limit = age_limit(folder, self.ages)
        if limit is None:
            return False
        delivered = delivery_time(filename)
        if delivered is None:
            self.undated += 1
            return False
        return self.now - delivered > limit
