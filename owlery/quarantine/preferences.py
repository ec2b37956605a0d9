"""Whether and how often each recipient hears of their quarantine: digest, immediate or none.

The choice comes from a Postfix-style map (`files_quarantine_notify`: `address value` or
`@domain value` lines, the address first), then from an LDAP attribute of the recipient's
entry (`ldap_quarantine_notify_attribute`, when directory_backend = "ldap"), then from
`quarantine_notify_default`. An unknown value is logged and the default used; a directory
that cannot answer leaves the recipient for the next run (PreferenceUnavailable) rather
than mailing someone who opted out. Map keys match as the directory compares addresses
(directory_local_part_case_sensitive: owlery.quarantine.base.recipient_key).
Talks to: the map file, LDAP (owlery.directory.ldap). Tests: tests/milters/test_quarantine_notify.py,
tests/milters/test_quarantine_case_s20.py
"""

from __future__ import annotations

import logging
from typing import Any

from owlery.quarantine.base import recipient_key
from owlery.settings import Str, choice, setting

MODES = ("digest", "immediate", "none")

QUARANTINE_NOTIFY_DEFAULT = setting(
    "quarantine_notify_default", choice(*MODES), "digest",
    "How recipients hear of mail quarantined for them unless the map or directory says otherwise: "
    "digest (once a day, at quarantine_notify_digest_hour), immediate (at the next notify run) or none.")
FILES_QUARANTINE_NOTIFY = setting(
    "files_quarantine_notify", Str, None,
    "Map of quarantine notice preferences: lines `user@example.org immediate` or "
    "`@example.org none` (digest, immediate or none); the address wins over its domain.")
LDAP_QUARANTINE_NOTIFY_ATTRIBUTE = setting(
    "ldap_quarantine_notify_attribute", Str, "",
    "LDAP attribute of a recipient's entry holding digest, immediate or none (empty: not looked up).")

log = logging.getLogger("owlery.quarantine")


class PreferenceUnavailable(Exception):
    """The directory could not say; try this recipient again at the next run."""


class Preferences:
    """`mode(address)` for each recipient; the map is read once per run."""

    def __init__(self, settings: Any):
        self.settings = settings
        self.default = settings.quarantine_notify_default
        self.case_sensitive = settings.directory_local_part_case_sensitive
        self.table: dict[str, str] = {}
        if settings.files_quarantine_notify:
            from owlery.directory.files import read_map
            for key, values, number in read_map(settings.files_quarantine_notify):
                value = values[0].lower() if values else ""
                if value not in MODES:
                    log.warning("quarantine: %s:%d: %r is not digest, immediate or none; ignored",
                                settings.files_quarantine_notify, number, value)
                    continue
                self.table[recipient_key(key, self.case_sensitive)] = value
        self.attribute = settings.ldap_quarantine_notify_attribute if settings.directory_backend == "ldap" else ""
        self._ldap: Any = None

    def mode(self, address: str) -> str:
        a = recipient_key(address, self.case_sensitive)
        for key in (a, "@" + a.rpartition("@")[2]):
            if key in self.table:
                return self.table[key]
        if self.attribute:
            value = self._from_ldap(address)
            if value is not None:
                return value
        return self.default

    def _from_ldap(self, address: str) -> str | None:
        from owlery.directory.ldap import LdapDirectory, escape
        from owlery.errors import DirectoryUnavailable
        if self._ldap is None:
            self._ldap = LdapDirectory(self.settings)
            self._ldap.attributes = sorted({*self._ldap.attributes, self.attribute})
        terms = "".join(f"({attr}={escape(address)})" for attr in self.settings.ldap_address_attributes)
        try:
            entries = self._ldap.search(f"(&{self.settings.ldap_user_filter}(|{terms}))", size_limit=2)
        except DirectoryUnavailable as e:
            raise PreferenceUnavailable(str(e)) from e
        for entry in entries:
            value = entry.first(self.attribute)
            if value is None:
                continue
            if value.strip().lower() in MODES:
                return value.strip().lower()
            log.warning("quarantine: %s: %s=%r is not digest, immediate or none; default used",
                        entry.dn, self.attribute, value)
        return None

    def close(self) -> None:
        if self._ldap is not None:
            self._ldap.close()
