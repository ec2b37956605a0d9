"""Per-recipient content policy, as amavis' *_lovers and policy banks: what a recipient takes delivery of anyway.

A recipient's policy is a short list of tokens, from the directory (`files_content_policy`
map lines `bob@example.org banned_files_lover` or `@example.net bank=relaxed`, or the LDAP
attribute `ldap_content_policy_attribute`; Directory.content_policy):

  banned_files_lover   a banned attachment is delivered to them (tagged), not refused or quarantined
  virus_lover          the same for a virus clamd found
  spam_lover           spam is tagged for them, never quarantined or refused (no kill/reject level)
  bank=NAME            the tokens of content_policy_banks[NAME] under the entry's own

A bank may also carry spam levels (`tag=`, `tag2=`, `kill=`/`quarantine=`, `reject=`); a
recipient's own levels (files_spam_levels, LDAP) win over the bank's, the bank's over the
global spam_*_level. Kept small on purpose: these are the knobs amavis sites use per user.
How the milter applies them to one message with several recipients: milters.content_policy.
Talks to: nothing (the directory reads the tokens). Tests: tests/milters/test_content_policy.py
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

from owlery.directory.base import SpamLevels, parse_spam_levels
from owlery.settings import Str, SettingType, list_of, setting, table_of

LOVERS = ("banned_files_lover", "virus_lover", "spam_lover")

log = logging.getLogger("owlery.directory")


def check_token(token: str, *, bank: bool = True) -> str:
    """One policy token, normalised (lower case); ValueError naming it when it is none."""
    t = token.strip().strip(",").lower()
    if t in LOVERS:
        return t
    name, sep, value = t.partition("=")
    if sep and name == "bank" and bank and value:
        return t
    if sep and name in ("tag", "tag2", "kill", "quarantine", "reject") and not bank:
        parse_spam_levels([t])                 # raises ValueError on a bad number
        return t
    allowed = ", ".join(LOVERS) + (", bank=NAME" if bank else ", tag=, tag2=, kill=, reject=")
    raise ValueError(f"unknown content policy {token!r} (expected {allowed})")


def _bank_token(v: object) -> str:
    return check_token(Str.parse(v), bank=False)


CONTENT_POLICY_BANKS = setting(
    "content_policy_banks", table_of(list_of(SettingType("content policy token", _bank_token)),
                                     name="table of bank name = [tokens]"), {},
    "Named policy banks a directory entry can point at with bank=NAME, e.g. "
    "{ relaxed = [\"spam_lover\"], strict = [\"tag2=3.5\", \"kill=6\"] }: lovers (banned_files_lover, "
    "virus_lover, spam_lover) and spam levels (tag=, tag2=, kill=, reject=) under the recipient's own.")


def split_tokens(values: Iterable[str]) -> list[str]:
    """Tokens from map values or LDAP attribute values (each may hold several, by spaces or commas)."""
    return [t for v in values for t in v.replace(",", " ").split() if t]


@dataclasses.dataclass(frozen=True)
class ContentPolicy:
    """One recipient's policy: the lovers it has, its bank, and the bank's spam levels."""

    lovers: frozenset[str] = frozenset()
    bank: str | None = None
    spam_levels: SpamLevels = SpamLevels()

    def loves(self, what: str) -> bool:
        return what in self.lovers

    @property
    def empty(self) -> bool:
        return not self.lovers and self.bank is None and self.spam_levels.empty


NO_POLICY = ContentPolicy()


def resolve(tokens: Iterable[str], banks: Mapping[str, Iterable[str]], who: str = "") -> ContentPolicy:
    """The policy the directory's tokens give, a bank's tokens merged under them. A token or
    bank that is not known is logged and left out (one bad value must not stop mail)."""
    lovers: set[str] = set()
    bank = None
    for token in tokens:
        try:
            t = check_token(token)
        except ValueError as e:
            log.warning("content policy: %s: %s; ignored", who or "-", e)
            continue
        if t.startswith("bank="):
            bank = t[5:]
        else:
            lovers.add(t)
    levels = SpamLevels()
    by_name = {name.lower(): tokens for name, tokens in banks.items()}
    if bank is not None:
        if bank not in by_name:
            log.warning("content policy: %s: bank %r is not in content_policy_banks; ignored", who or "-", bank)
            bank = None
        else:
            lovers.update(t for t in by_name[bank] if t in LOVERS)
            levels = parse_spam_levels(t for t in by_name[bank] if t not in LOVERS)
    return ContentPolicy(frozenset(lovers), bank, levels)
