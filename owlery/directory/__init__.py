"""Directory: recipients, aliases, quotas, protected lists and spam levels, from map files, LDAP or local accounts.

`open_directory(settings)` returns the backend chosen by `directory_backend`
("files", the embedded default, "ldap", or "passwd": the local Unix accounts,
owlery/directory/passwd.py) wrapped in the TTL cache. The interface and the address
rules are in owlery/directory/base.py.
Talks to: files, an LDAP server or the system's account database. Tests: tests/directory/
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from owlery.directory.base import (Address, Directory, ListPolicy, ListTooLarge, Mailbox, Recipient,
                                   SpamLevels, normalise, parse_address)
from owlery.directory.cache import MISS, CachingDirectory
from owlery.settings import Duration, choice, int_range, setting

DIRECTORY_BACKEND = setting(
    "directory_backend", choice("files", "ldap", "passwd"), "files",
    "Where users, aliases, quotas and lists come from: files (Postfix-style maps, files_* "
    "settings), ldap (ldap_* settings) or passwd (the local Unix accounts and an aliases(5) "
    "file, passwd_* settings).")
DIRECTORY_CACHE_POSITIVE_TTL = setting(
    "directory_cache_positive_ttl", Duration, 300, unit="s",
    doc="How long an answer that found something (a user, an alias, a list) is reused. 0: no caching.")
DIRECTORY_CACHE_NEGATIVE_TTL = setting(
    "directory_cache_negative_ttl", Duration, 60, unit="s",
    doc="How long 'no such user / not a list / not our domain' is reused; keep it short so "
        "new users are accepted soon. 0: not cached.")
DIRECTORY_CACHE_ENTRIES_MAX = setting(
    "directory_cache_entries_max", int_range(1, 10_000_000), 100_000,
    "Most cached answers kept; the oldest are dropped first.")
DIRECTORY_LOOKUP_TIMEOUT = setting(
    "directory_lookup_timeout", Duration, 10, unit="s",
    doc="Longest a policy check waits for one directory answer (including waiting for a thread) "
        "before answering DEFER_IF_PERMIT 4.3.0.")

__all__ = ["Address", "CachingDirectory", "Directory", "ListPolicy", "ListTooLarge", "MISS", "Mailbox", "Recipient",
           "SpamLevels", "normalise", "open_backend", "open_directory", "parse_address"]


def open_backend(settings: Any, clock: Callable[[], float] = time.monotonic) -> Directory:
    """The uncached backend named by directory_backend."""
    if settings.directory_backend == "ldap":
        from owlery.directory.ldap import LdapDirectory
        return LdapDirectory(settings)
    if settings.directory_backend == "passwd":
        from owlery.directory.passwd import PasswdDirectory
        return PasswdDirectory(settings, clock=clock)
    from owlery.directory.files import FilesDirectory
    return FilesDirectory(settings, clock=clock)


def open_directory(settings: Any, clock: Callable[[], float] = time.monotonic) -> CachingDirectory:
    """The configured backend behind the TTL cache (blocking methods; see base.Directory)."""
    return CachingDirectory(open_backend(settings, clock),
                            positive_ttl=settings.directory_cache_positive_ttl,
                            negative_ttl=settings.directory_cache_negative_ttl,
                            entries_max=settings.directory_cache_entries_max,
                            clock=clock)
